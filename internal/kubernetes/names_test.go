package kubernetes

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestObjectName(t *testing.T) {
	long := strings.Repeat("x", 80)
	tests := []struct {
		base, version, want string
	}{
		{"shop", "v2", "shop-v2"},
		{"shop", "V2.1.0+build.7", "shop-v2-1-0-build-7"},
		{"shop", "2026-12-03_a", "shop-2026-12-03-a"},
	}
	for _, tt := range tests {
		if got := ObjectName(tt.base, tt.version); got != tt.want {
			t.Errorf("ObjectName(%q, %q) = %q, want %q", tt.base, tt.version, got, tt.want)
		}
	}
	// Names that had to be cut or had nothing left keep apart by a hash,
	// and are all valid Service names.
	a, b := ObjectName("shop", long+"a"), ObjectName("shop", long+"b")
	if a == b {
		t.Errorf("two long versions share the name %q", a)
	}
	for _, n := range []string{a, b, ObjectName("shop", "+++"), ObjectName(strings.Repeat("s", 40), long)} {
		if errs := validation.IsDNS1035Label(n); len(errs) > 0 {
			t.Errorf("%q is not a Service name: %v", n, errs)
		}
	}
}

func TestLabelValue(t *testing.T) {
	for _, v := range []string{"v2", "production", "v2.1.0+build", strings.Repeat("v", 70), "-x-", "ünï"} {
		got := labelValue(v)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("labelValue(%q) = %q, not a label value: %v", v, got, errs)
		}
	}
	if got := labelValue("v2"); got != "v2" {
		t.Errorf("labelValue(v2) = %q, want it unchanged", got)
	}
	if labelValue("v2+a") == labelValue("v2-a") {
		t.Error("two versions share a label value")
	}
}
