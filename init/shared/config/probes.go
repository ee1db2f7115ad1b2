package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// RKE2's control-plane-probe-configuration: "<component>-<probe>-<setting>
// =<value>" items, comma-separated or one per list entry, like
// "kube-apiserver-liveness-period-seconds=30". They change the timing of
// the control plane's probes, where a slow machine needs more patience
// than kubeadm's defaults.

// probeComponents are the static pods a probe setting names; RKE2 also
// names cloud-controller-manager, which this OS does not run.
var probeComponents = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd"}

var (
	probeKinds    = []string{"liveness", "readiness", "startup"}
	probeSettings = []string{"initial-delay-seconds", "timeout-seconds", "failure-threshold", "period-seconds"}
)

// ParseProbeConfiguration reads control-plane-probe-configuration values
// into their settings by key ("kube-apiserver-liveness-period-seconds").
func ParseProbeConfiguration(values []string) (map[string]int32, error) {
	out := map[string]int32{}
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			key, val, ok := strings.Cut(item, "=")
			if !ok {
				return nil, fmt.Errorf("%q is not a probe setting like kube-apiserver-liveness-period-seconds=30", item)
			}
			if err := checkProbeKey(key); err != nil {
				return nil, err
			}
			n, err := strconv.ParseInt(val, 10, 32)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%q: the value of %s must be a whole number of seconds or times, 0 or more", item, key)
			}
			out[key] = int32(n)
		}
	}
	return out, nil
}

func checkProbeKey(key string) error {
	if strings.HasPrefix(key, "cloud-controller-manager-") {
		return fmt.Errorf("%q: this OS runs no cloud-controller-manager", key)
	}
	for _, c := range probeComponents {
		rest, ok := strings.CutPrefix(key, c+"-")
		if !ok {
			continue
		}
		for _, k := range probeKinds {
			s, ok := strings.CutPrefix(rest, k+"-")
			if ok && slices.Contains(probeSettings, s) {
				return nil
			}
		}
	}
	return fmt.Errorf("%q is not a probe setting: <component>-<probe>-<setting>, the component one of %s, the probe one of %s, the setting one of %s",
		key, strings.Join(probeComponents, ", "), strings.Join(probeKinds, ", "), strings.Join(probeSettings, ", "))
}

// checkProbeConfiguration checks one control-plane-probe-configuration entry.
func checkProbeConfiguration(s string) error {
	_, err := ParseProbeConfiguration([]string{s})
	return err
}

// ProbeConfiguration returns control-plane-probe-configuration (and its
// "+" form), checked when the config was parsed: nil if it has none.
func (r RKE2Config) ProbeConfiguration() map[string]int32 {
	m, err := ParseProbeConfiguration(r.Strings("control-plane-probe-configuration"))
	if err != nil || len(m) == 0 {
		return nil
	}
	return m
}
