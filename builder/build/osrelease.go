package build

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rke2os/rke2os/init/shared/layout"
)

// osRelease renders the image's os-release (layout.OSRelease in the
// initramfs, /boot/os-release in the slot): what the image is, for the
// kubelet (a Node's osImage is its PRETTY_NAME), for people, and for the
// upgrade that compares what a slot holds with what is asked for.
func osRelease(o Options) ([]byte, error) {
	version := osVersion(o)
	for _, c := range version {
		if c <= ' ' || c > '~' || c == '"' || c == '\\' || c == '$' || c == '`' {
			return nil, inputErr("--os-version %q: use letters, digits and . + - _ ~ only", version)
		}
	}
	var b strings.Builder
	field := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, strconv.Quote(v)) }
	field("NAME", "rke2os")
	field("ID", "rke2os")
	field("PRETTY_NAME", "rke2os "+version+" ("+o.Role+")")
	field("VERSION", version)
	field("VERSION_ID", version)
	field("HOME_URL", "https://github.com/rke2os/rke2os")
	field("RKE2OS_ROLE", o.Role)
	if o.Version != "" {
		field("RKE2_VERSION", o.Version)
	}
	// The build's date (SOURCE_DATE_EPOCH): a node installs no upgrade
	// built before the image it runs (upgrader's rollback protection).
	field(layout.OSReleaseBuildDate, o.Epoch.UTC().Format(time.RFC3339))
	return []byte(b.String()), nil
}

// osVersion is the image's own version: --os-version, else the RKE2
// version, else "dev".
func osVersion(o Options) string { return cmp.Or(o.OSVersion, o.Version, "dev") }
