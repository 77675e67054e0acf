// Package auth defines API tokens, their roles and what each role may do.
//
// A token is a random secret shown once; only its SHA-256 is stored, so a
// leaked database or log never leaks a usable token. The API hashes the
// bearer secret of a request and asks the token store for the Token.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Role is what a token may do.
type Role string

// Roles, from least to most powerful.
const (
	// RoleViewer may read: status, history, audit, metrics.
	RoleViewer Role = "viewer"
	// RoleDeployer may also deploy, promote, abort and roll back.
	RoleDeployer Role = "deployer"
	// RoleAdmin may also manage tokens.
	RoleAdmin Role = "admin"
	// RoleFlagClient may only evaluate feature flags (OFREP). It is the
	// key an app's OpenFeature SDK holds, and no admin route accepts it.
	RoleFlagClient Role = "flag-client"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleViewer, RoleDeployer, RoleAdmin, RoleFlagClient:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: want viewer, deployer, admin or flag-client", s)
}

// Allows reports whether a token with role r may act with role need. A
// flag-client allows nothing but itself: it ranks below viewer.
func (r Role) Allows(need Role) bool { return rank(r) >= rank(need) }

func rank(r Role) int {
	switch r {
	case RoleViewer:
		return 1
	case RoleDeployer:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Token is a named API credential. The secret itself is never stored.
type Token struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// secretPrefix marks Shipgate secrets so that secret scanners find them.
const secretPrefix = "sgt_"

// NewSecret returns a new random token secret.
func NewSecret() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return secretPrefix + hex.EncodeToString(b[:]), nil
}

// Hash returns the hex SHA-256 of a secret, the form in which it is stored.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
