package sqlite

import (
	"errors"
	"reflect"
	"testing"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

func TestStore_Tokens(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	alice := auth.Token{Name: "alice", Role: auth.RoleAdmin, CreatedAt: t0}
	ci := auth.Token{Name: "ci", Role: auth.RoleDeployer, CreatedAt: t0}
	if err := s.CreateToken(ctx, ci, auth.Hash("sgt_ci")); err != nil {
		t.Fatalf("CreateToken(ci): %v", err)
	}
	if err := s.CreateToken(ctx, alice, auth.Hash("sgt_alice")); err != nil {
		t.Fatalf("CreateToken(alice): %v", err)
	}

	t.Run("create errors", func(t *testing.T) {
		tests := []struct {
			name   string
			token  auth.Token
			hash   string
			wantIs error
		}{
			{"same name", auth.Token{Name: "alice", Role: auth.RoleViewer}, auth.Hash("other"), rollout.ErrConflict},
			{"same secret", auth.Token{Name: "bob", Role: auth.RoleViewer}, auth.Hash("sgt_ci"), rollout.ErrConflict},
			{"unknown role", auth.Token{Name: "bob", Role: "root"}, auth.Hash("bob"), rollout.ErrInvalid},
			{"no name", auth.Token{Role: auth.RoleViewer}, auth.Hash("bob"), rollout.ErrInvalid},
			{"no hash", auth.Token{Name: "bob", Role: auth.RoleViewer}, "", rollout.ErrInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.CreateToken(ctx, tt.token, tt.hash); !errors.Is(err, tt.wantIs) {
					t.Errorf("CreateToken = %v, want %v", err, tt.wantIs)
				}
			})
		}
	})

	t.Run("by hash", func(t *testing.T) {
		got, err := s.TokenByHash(ctx, auth.Hash("sgt_alice"))
		if err != nil || !reflect.DeepEqual(got, alice) {
			t.Errorf("TokenByHash = %+v, %v; want %+v", got, err, alice)
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("wrong")); !errors.Is(err, rollout.ErrNotFound) {
			t.Errorf("TokenByHash(wrong) = %v, want ErrNotFound", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		got, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []auth.Token{alice, ci}; !reflect.DeepEqual(got, want) {
			t.Errorf("ListTokens = %+v, want %+v", got, want)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteToken(ctx, "ci"); err != nil {
			t.Fatalf("DeleteToken: %v", err)
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("sgt_ci")); !errors.Is(err, rollout.ErrNotFound) {
			t.Errorf("deleted token still authenticates: %v", err)
		}
		if err := s.DeleteToken(ctx, "ci"); !errors.Is(err, rollout.ErrNotFound) {
			t.Errorf("second DeleteToken = %v, want ErrNotFound", err)
		}
		got, err := s.ListTokens(ctx)
		if err != nil || len(got) != 1 || got[0].Name != "alice" {
			t.Errorf("ListTokens after delete = %+v, %v; want only alice", got, err)
		}
		// The name is free again.
		if err := s.CreateToken(ctx, ci, auth.Hash("sgt_ci2")); err != nil {
			t.Errorf("CreateToken after delete: %v", err)
		}
	})
}

// TestStore_TokensAudited: a token change and its audit event are stored
// in one transaction, so that neither is ever stored without the other.
func TestStore_TokensAudited(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	created := func(name string) audit.Event {
		return audit.Event{Actor: "user:admin", Action: "token.create", Subject: "token/" + name}
	}
	revoked := func(tok auth.Token) audit.Event {
		return audit.Event{Actor: "user:admin", Action: "token.revoke", Subject: "token/" + tok.Name, Data: map[string]string{"role": string(tok.Role)}}
	}
	events := func(t *testing.T) []audit.Event {
		t.Helper()
		list, err := s.ListAudit(ctx, audit.Filter{Subject: "token/"})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}

	ci := auth.Token{Name: "ci", Role: auth.RoleDeployer, CreatedAt: t0}
	if err := s.CreateTokenAudited(ctx, ci, auth.Hash("sgt_ci"), created("ci")); err != nil {
		t.Fatalf("CreateTokenAudited: %v", err)
	}
	if got, err := s.TokenByHash(ctx, auth.Hash("sgt_ci")); err != nil || got != ci {
		t.Fatalf("TokenByHash = %+v, %v; want %+v", got, err, ci)
	}
	if got := events(t); len(got) != 1 || got[0].Action != "token.create" || got[0].Subject != "token/ci" {
		t.Fatalf("audit after create = %+v, want one token.create of token/ci", got)
	}

	t.Run("refused create writes no event", func(t *testing.T) {
		err := s.CreateTokenAudited(ctx, auth.Token{Name: "ci", Role: auth.RoleViewer}, auth.Hash("other"), created("ci"))
		if !errors.Is(err, rollout.ErrConflict) {
			t.Fatalf("CreateTokenAudited(same name) = %v, want ErrConflict", err)
		}
		if got := len(events(t)); got != 1 {
			t.Fatalf("audit events = %d, want 1", got)
		}
	})
	t.Run("event refused, token not stored", func(t *testing.T) {
		// An event without an actor is refused by the audit log; the token
		// must not be stored without it.
		err := s.CreateTokenAudited(ctx, auth.Token{Name: "dash", Role: auth.RoleViewer}, auth.Hash("sgt_dash"), audit.Event{Action: "token.create"})
		if err == nil {
			t.Fatal("CreateTokenAudited with an invalid event = nil, want an error")
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("sgt_dash")); !errors.Is(err, rollout.ErrNotFound) {
			t.Fatalf("token stored without its audit event: %v", err)
		}
		err = s.DeleteTokenAudited(ctx, "ci", func(auth.Token) audit.Event { return audit.Event{Action: "token.revoke"} })
		if err == nil {
			t.Fatal("DeleteTokenAudited with an invalid event = nil, want an error")
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("sgt_ci")); err != nil {
			t.Fatalf("token deleted without its audit event: %v", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteTokenAudited(ctx, "ci", revoked); err != nil {
			t.Fatalf("DeleteTokenAudited: %v", err)
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("sgt_ci")); !errors.Is(err, rollout.ErrNotFound) {
			t.Fatalf("revoked token still authenticates: %v", err)
		}
		got := events(t)
		if len(got) != 2 || got[0].Action != "token.revoke" || got[0].Data["role"] != "deployer" {
			t.Fatalf("audit after revoke = %+v, want token.revoke with role deployer first", got)
		}
		if err := s.DeleteTokenAudited(ctx, "ci", revoked); !errors.Is(err, rollout.ErrNotFound) {
			t.Fatalf("second DeleteTokenAudited = %v, want ErrNotFound", err)
		}
		if got := len(events(t)); got != 2 {
			t.Fatalf("audit events after a refused delete = %d, want 2", got)
		}
		chain, err := s.AuditChain(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.Verify(chain); err != nil {
			t.Fatalf("audit chain: %v", err)
		}
	})
}
