package pods

import (
	"reflect"
	"testing"
)

func TestMergeArgs(t *testing.T) {
	defaults := map[string]string{"profiling": "false", "bind-address": "127.0.0.1", "enable-admission-plugins": "NodeRestriction"}
	for _, tc := range []struct {
		name string
		user []string
		want []string
	}{
		{"defaults sorted", nil, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction", "--profiling=false"}},
		{"a default overridden", []string{"bind-address=0.0.0.0"}, []string{
			"--bind-address=0.0.0.0", "--enable-admission-plugins=NodeRestriction", "--profiling=false"}},
		{"a new flag added in order", []string{"audit-log-maxage=30"}, []string{
			"--audit-log-maxage=30", "--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction", "--profiling=false"}},
		{"leading dashes dropped", []string{"--profiling=true", "-v=2"}, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction", "--profiling=true", "--v=2"}},
		{"a bare flag is true", []string{"profiling"}, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction", "--profiling=true"}},
		{"given twice, both in order", []string{"tls-sni-cert-key=/a.crt,/a.key", "tls-sni-cert-key=/b.crt,/b.key"}, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction", "--profiling=false",
			"--tls-sni-cert-key=/a.crt,/a.key", "--tls-sni-cert-key=/b.crt,/b.key"}},
		{"an override replaces the default once", []string{"profiling=true", "profiling=false"}, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction", "--profiling=true", "--profiling=false"}},
		{"+= appends to the default", []string{"enable-admission-plugins+=PodNodeSelector", "enable-admission-plugins+=AlwaysPullImages"}, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction",
			"--enable-admission-plugins=PodNodeSelector", "--enable-admission-plugins=AlwaysPullImages", "--profiling=false"}},
		{"-= prepends to the default", []string{"enable-admission-plugins-=PodNodeSelector"}, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=PodNodeSelector",
			"--enable-admission-plugins=NodeRestriction", "--profiling=false"}},
		{"+= without a default", []string{"feature-gates+=A=true"}, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction", "--feature-gates=A=true", "--profiling=false"}},
		{"a value with =", []string{"feature-gates=A=true,B=false"}, []string{
			"--bind-address=127.0.0.1", "--enable-admission-plugins=NodeRestriction", "--feature-gates=A=true,B=false", "--profiling=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MergeArgs(defaults, tc.user); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("MergeArgs(%q)\n got %q\nwant %q", tc.user, got, tc.want)
			}
		})
	}
	if len(defaults) != 3 || defaults["profiling"] != "false" {
		t.Errorf("MergeArgs changed its defaults: %v", defaults)
	}
}

func TestOverrideArgs(t *testing.T) {
	got := overrideArgs([]string{"--name=a", "--snapshot-count=10000", "--heartbeat-interval=500"},
		[]string{"--snapshot-count=5000", "quota-backend-bytes=8589934592", "-heartbeat-interval=250"})
	want := []string{"--name=a", "--snapshot-count=5000", "--heartbeat-interval=250", "--quota-backend-bytes=8589934592"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
