package network

import (
	"strings"
	"testing"
)

func TestIsDNSName(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		s    string
		max  int
		want bool
	}{
		{"lab.example", maxDomainName, true},
		{"lab.example.", maxDomainName, true},
		{"xn--bcher-kva.example", maxDomainName, true},
		{"10.in-addr.arpa", maxDomainName, true},
		{"a-b.c", maxDomainName, true},
		{long + ".example", maxDomainName, true},
		{long + "a.example", maxDomainName, false},
		{strings.Repeat("a.", 126) + "a", maxDomainName, true}, // 253
		{strings.Repeat("a.", 127) + "a", maxDomainName, false},
		{strings.Repeat("a", 65), maxHostName, false},
		{"", maxDomainName, false},
		{".", maxDomainName, false},
		{"a..b", maxDomainName, false},
		{".a", maxDomainName, false},
		{"a.b..", maxDomainName, false},
		{"-a.example", maxDomainName, false},
		{"a-.example", maxDomainName, false},
		{"a_b.example", maxDomainName, false},
		{"a b", maxDomainName, false},
		{"a\nnameserver 6.6.6.6", maxDomainName, false},
		{"a\r", maxDomainName, false},
		{"a\x00", maxDomainName, false},
		{"bücher.example", maxDomainName, false},
	}
	for _, tt := range tests {
		if got := isDNSName(tt.s, tt.max); got != tt.want {
			t.Errorf("isDNSName(%q, %d) = %v, want %v", tt.s, tt.max, got, tt.want)
		}
	}
}
