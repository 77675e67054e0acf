package testsignal

import (
	"path"
	"strings"
)

// CodeOwners is a parsed CODEOWNERS file: the last matching rule wins, as
// on GitHub and GitLab.
type CodeOwners []ownerRule

type ownerRule struct {
	pattern string
	owners  []string
}

// ParseCodeOwners reads a CODEOWNERS file. Comments, empty lines, GitLab
// section headers and rules without owners are ignored.
func ParseCodeOwners(data string) CodeOwners {
	var out CodeOwners
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if line == "" || line[0] == '#' || line[0] == '[' || line[0] == '^' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		out = append(out, ownerRule{pattern: f[0], owners: f[1:]})
	}
	return out
}

// Owner returns the owners of a path (slash-separated, relative to the
// repository root), "" when no rule matches.
func (co CodeOwners) Owner(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	owner := ""
	for _, r := range co {
		if ownerMatch(r.pattern, p) {
			owner = strings.Join(r.owners, " ")
		}
	}
	return owner
}

// ownerMatch matches a CODEOWNERS pattern (gitignore rules: anchored when
// it has a slash other than a trailing one, a directory when it ends in a
// slash, '*' within a segment, '**' across segments).
func ownerMatch(pattern, p string) bool {
	dir := strings.HasSuffix(pattern, "/")
	pattern = strings.TrimSuffix(pattern, "/")
	anchored := strings.Contains(pattern, "/")
	pattern = strings.TrimPrefix(pattern, "/")
	if pattern == "*" || pattern == "**" {
		return true
	}
	segs := strings.Split(p, "/")
	pat := strings.Split(pattern, "/")
	if !anchored {
		// A name matches at any depth, as the file or a directory above it.
		for i := range segs {
			if ok, _ := path.Match(pattern, segs[i]); ok && (!dir || i < len(segs)-1) {
				return true
			}
		}
		return false
	}
	return matchSegs(pat, segs, dir)
}

// matchSegs matches pattern segments against path segments; a pattern
// that matches a prefix of the path matches the files under it.
func matchSegs(pat, segs []string, dir bool) bool {
	if len(pat) == 0 {
		return len(segs) > 0 || !dir
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if matchSegs(pat[1:], segs[i:], dir) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	if ok, _ := path.Match(pat[0], segs[0]); !ok {
		return false
	}
	if len(pat) == 1 {
		return !dir || len(segs) > 1
	}
	return matchSegs(pat[1:], segs[1:], dir)
}

// TestPath guesses the source path of a test for CODEOWNERS: its file
// when the report says, else its class as a path (com.shop.CartTest →
// com/shop/CartTest), which unanchored rules and ** rules can match.
func TestPath(f Flaky) string {
	if f.File != "" {
		return f.File
	}
	id := f.ID
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		id = id[:i]
	}
	return strings.ReplaceAll(id, ".", "/")
}
