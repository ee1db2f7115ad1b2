// Package content is RKE2's content bootstrap, done by the init exactly as
// the rke2 binary does it: find the rancher/rke2-runtime image of the RKE2
// version among the airgap archives in agent/images/ (docker-save .tar,
// .tar.gz, .tar.zst), or pull it from a registry through the mirrors of
// registries.yaml, and extract its /bin and /charts into
// data/<key>/ with the .extracted marker and the bin symlink, keyed as RKE2
// keys them, so that RKE2's tools and docs find everything where they
// expect it.
//
// It also holds what the builder shares with the init: reading docker-save
// archives once with every digest checked and hostile entries refused,
// verified layer streams, safe extraction (whiteouts applied, nothing ever
// written outside the target, which appears whole or not at all), image
// name normalisation and pulls through registries.yaml (whose one schema is
// config.Registries). The builder's package content
// builds on this one; packages under init/ never import the builder's.
package content
