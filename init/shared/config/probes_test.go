package config

import (
	"maps"
	"strings"
	"testing"
)

func TestParseProbeConfiguration(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want map[string]int32
		err  string
	}{
		{in: nil, want: map[string]int32{}},
		{in: []string{"kube-apiserver-liveness-period-seconds=30"}, want: map[string]int32{"kube-apiserver-liveness-period-seconds": 30}},
		{in: []string{"etcd-liveness-failure-threshold=20, kube-proxy-liveness-timeout-seconds=5", "kube-scheduler-startup-initial-delay-seconds=0"},
			want: map[string]int32{"etcd-liveness-failure-threshold": 20, "kube-proxy-liveness-timeout-seconds": 5, "kube-scheduler-startup-initial-delay-seconds": 0}},
		{in: []string{"kube-controller-manager-readiness-period-seconds=1,kube-controller-manager-readiness-period-seconds=2"},
			want: map[string]int32{"kube-controller-manager-readiness-period-seconds": 2}},
		{in: []string{"kube-apiserver-liveness-period-seconds"}, err: "is not a probe setting like"},
		{in: []string{"kube-apiserver-liveness-period=30"}, err: "the setting one of"},
		{in: []string{"kube-apiserver-livenes-period-seconds=30"}, err: "the probe one of"},
		{in: []string{"kubelet-liveness-period-seconds=30"}, err: "the component one of"},
		{in: []string{"cloud-controller-manager-liveness-period-seconds=30"}, err: "no cloud-controller-manager"},
		{in: []string{"etcd-liveness-period-seconds=-1"}, err: "0 or more"},
		{in: []string{"etcd-liveness-period-seconds=1s"}, err: "whole number"},
		{in: []string{"etcd-liveness-period-seconds=99999999999"}, err: "whole number"},
	} {
		got, err := ParseProbeConfiguration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// A bad setting is refused where it is written, with its line.
func TestProbeConfigurationInConfig(t *testing.T) {
	good := "#cloud-config\nrke2:\n  control-plane-probe-configuration:\n    - kube-apiserver-liveness-period-seconds=30\n    - etcd-liveness-failure-threshold=20\n"
	c, err := Parse("user-data", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RKE2.ProbeConfiguration(); got["kube-apiserver-liveness-period-seconds"] != 30 || got["etcd-liveness-failure-threshold"] != 20 {
		t.Errorf("ProbeConfiguration: %v", got)
	}
	if w := c.RKE2Warnings(); len(w) != 0 {
		t.Errorf("warnings for a key acted on: %v", w)
	}
	_, err = Parse("user-data", []byte("#cloud-config\nrke2:\n  control-plane-probe-configuration: kube-apiserver-liveness-period=30\n"))
	if err == nil || !strings.Contains(err.Error(), "user-data line 3") || !strings.Contains(err.Error(), "the setting one of") {
		t.Errorf("bad setting: %v", err)
	}
}

func FuzzParseProbeConfiguration(f *testing.F) {
	f.Add("kube-apiserver-liveness-period-seconds=30,etcd-startup-failure-threshold=2")
	f.Add("=,=")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseProbeConfiguration([]string{s})
		if err != nil {
			return
		}
		for k, v := range m {
			if v < 0 || checkProbeKey(k) != nil {
				t.Fatalf("%q gave %s=%d", s, k, v)
			}
		}
	})
}
