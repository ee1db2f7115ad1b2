package config

import (
	"maps"
	"slices"
)

// Merge returns base with each overlay applied in order, later wins: a
// non-empty scalar (or an ntp.enabled or join.trust_on_first_use that is
// set) replaces the earlier one, a non-empty list replaces the earlier
// list whole (write_files, modules, network interfaces, DNS servers and
// search domains, NTP servers and pools), an install section replaces the
// earlier one whole (its device and disk do not mix), and maps merge key by key
// (sysctls, debug, rke2, registries mirrors and configs). Nil configs are skipped. The inputs are not
// modified, and the result shares no map or slice with them.
func Merge(base *Config, overlays ...*Config) *Config {
	out := &Config{}
	for _, c := range append([]*Config{base}, overlays...) {
		if c == nil {
			continue
		}
		out.Hostname = scalar(out.Hostname, c.Hostname)
		out.NodeRole = scalar(out.NodeRole, c.NodeRole)
		out.OnContainerdExit = scalar(out.OnContainerdExit, c.OnContainerdExit)
		if len(c.WriteFiles) > 0 {
			out.WriteFiles = slices.Clone(c.WriteFiles)
		}
		if len(c.Modules) > 0 {
			out.Modules = slices.Clone(c.Modules)
		}
		out.Sysctls = mergeMap(out.Sysctls, c.Sysctls)
		out.Debug = mergeMap(out.Debug, c.Debug)
		out.RKE2 = mergeMap(out.RKE2, c.RKE2)
		out.Registries.Mirrors = mergeMap(out.Registries.Mirrors, c.Registries.Mirrors)
		out.Registries.Configs = mergeMap(out.Registries.Configs, c.Registries.Configs)
		if len(c.Network.Interfaces) > 0 {
			out.Network.Interfaces = cloneInterfaces(c.Network.Interfaces)
		}
		if len(c.Network.DNS.Servers) > 0 {
			out.Network.DNS.Servers = slices.Clone(c.Network.DNS.Servers)
		}
		if len(c.Network.DNS.Search) > 0 {
			out.Network.DNS.Search = slices.Clone(c.Network.DNS.Search)
		}
		if c.NTP.Enabled != nil {
			on := *c.NTP.Enabled
			out.NTP.Enabled = &on
		}
		if c.Join.TrustOnFirstUse != nil {
			on := *c.Join.TrustOnFirstUse
			out.Join.TrustOnFirstUse = &on
		}
		if len(c.NTP.Servers) > 0 {
			out.NTP.Servers = slices.Clone(c.NTP.Servers)
		}
		if len(c.NTP.Pools) > 0 {
			out.NTP.Pools = slices.Clone(c.NTP.Pools)
		}
		if c.Install != nil {
			in := *c.Install
			if in.Disk != nil {
				d := *in.Disk
				in.Disk = &d
			}
			out.Install = &in
		}
	}
	return out
}

// scalar returns the later value if it is set, else the earlier one.
func scalar(earlier, later string) string {
	if later != "" {
		return later
	}
	return earlier
}

// mergeMap returns a copy of dst with src's keys set over it; nil if both
// are empty.
func mergeMap[M ~map[K]V, K comparable, V any](dst, src M) M {
	if len(src) == 0 {
		return dst
	}
	out := make(M, len(dst)+len(src))
	maps.Copy(out, dst)
	maps.Copy(out, src)
	return out
}

// cloneInterfaces deep-copies interfaces, so that the merged config shares
// no slices with its sources.
func cloneInterfaces(in []Interface) []Interface {
	out := slices.Clone(in)
	for i := range out {
		out[i].MAC = slices.Clone(out[i].MAC)
		out[i].Addresses = slices.Clone(out[i].Addresses)
		out[i].Routes = slices.Clone(out[i].Routes)
	}
	return out
}
