package testsignal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseJUnit: any input parses or fails cleanly; what parses has an
// attempt per test and levels that classify.
func FuzzParseJUnit(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "junit", "*.xml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<testsuites><testsuite><testsuite><testcase name="a"><flakyError/><flakyFailure/></testcase></testsuite></testsuite></testsuites>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cases, err := ParseJUnit(bytes.NewReader(data))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, c := range cases {
			if len(c.Attempts) == 0 {
				t.Fatalf("%s has no attempt", c.ID)
			}
			if seen[c.ID] {
				t.Fatalf("%s is listed twice", c.ID)
			}
			seen[c.ID] = true
			_ = DefaultLevels.Classify(c)
		}
		r := Run{Cases: cases}
		r.Classify(DefaultLevels, 0)
		_ = DetectFlaky([]Run{r, r})
	})
}
