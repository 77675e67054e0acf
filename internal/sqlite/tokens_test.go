package sqlite

import (
	"errors"
	"reflect"
	"testing"

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
