package kubernetes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckContainer: an inline template is checked before any deploy: the
// container named by kubernetes.container must exist, and a template with
// several containers must name one; the error names the field and the
// containers there are.
func TestCheckContainer(t *testing.T) {
	const two = `spec:
  containers:
    - {name: proxy, image: registry.example/envoy:1.31}
    - {name: app, image: registry.example/shop:v0}
`
	const one = `spec:
  containers:
    - {name: app, image: registry.example/shop:v0}
`
	for _, tt := range []struct {
		name, yaml, container, wantErr string
	}{
		{"only container", one, "", ""},
		{"only container named", one, "app", ""},
		{"two, none named", two, "", "has 2 containers (proxy, app): set kubernetes.container"},
		{"two, one named", two, "app", ""},
		{"no such container", two, "web", `no container "web" (kubernetes.container); it has proxy, app`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pod.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			tmpl, err := LoadTemplate(path)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckContainer(tmpl, tt.container)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckContainer: %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CheckContainer: %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}
