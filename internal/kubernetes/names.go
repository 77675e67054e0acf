package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Labels and annotations Shipgate puts on every object it creates. The
// labels select; the annotations keep the raw names, which labels may not
// be able to hold.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "shipgate"
	LabelApp       = "shipgate.dev/app"
	LabelEnv       = "shipgate.dev/env"
	LabelVersion   = "shipgate.dev/version"

	AnnotationApp     = "shipgate.dev/app"
	AnnotationEnv     = "shipgate.dev/env"
	AnnotationVersion = "shipgate.dev/version"
)

// maxName is the longest name a Service may have (a DNS-1035 label).
const maxName = 63

// ObjectName is the name of the Deployment and the Service of one release:
// base-<version slug>, cut with a hash when it would be longer than 63
// characters, so two versions never share a name.
func ObjectName(base, version string) string {
	s := slug(version)
	name := base + "-" + s
	if len(name) <= maxName && s != "" {
		return name
	}
	sum := sha256.Sum256([]byte(version))
	h := hex.EncodeToString(sum[:])[:8]
	keep := maxName - len(base) - 1 - len(h) - 1
	if keep < 0 {
		keep = 0
	}
	if len(s) > keep {
		s = strings.Trim(s[:keep], "-")
	}
	if s == "" {
		return trimName(base + "-" + h)
	}
	return trimName(base + "-" + s + "-" + h)
}

func trimName(n string) string {
	if len(n) > maxName {
		n = n[:maxName]
	}
	return strings.Trim(n, "-")
}

// slug turns a version into lowercase letters, digits and dashes.
func slug(v string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(v) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	return strings.Trim(b.String(), "-")
}

// labelValue makes s a valid label value: at most 63 characters of
// letters, digits, '-', '_' and '.', starting and ending alphanumeric. A
// value that had to change gets a hash suffix so that two names never
// collide.
func labelValue(s string) string {
	valid := len(s) <= maxName
	for _, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && r != '-' && r != '_' && r != '.' {
			valid = false
			break
		}
	}
	if valid && s != "" && isAlnum(s[0]) && isAlnum(s[len(s)-1]) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:])[:8]
	v := slug(s)
	if len(v) > maxName-9 {
		v = strings.Trim(v[:maxName-9], "-")
	}
	if v == "" {
		return h
	}
	return v + "-" + h
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Selector is the labels that select the pods of one release.
func Selector(app, env, version string) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedBy,
		LabelApp:       labelValue(app),
		LabelEnv:       labelValue(env),
		LabelVersion:   labelValue(version),
	}
}

func annotations(app, env, version string) map[string]string {
	return map[string]string{AnnotationApp: app, AnnotationEnv: env, AnnotationVersion: version}
}

// owned reports whether an object's labels say Shipgate made it for this
// release.
func owned(labels map[string]string, app, env, version string) bool {
	for k, v := range Selector(app, env, version) {
		if labels[k] != v {
			return false
		}
	}
	return true
}
