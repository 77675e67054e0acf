package flags

import (
	"context"
	"fmt"
	"time"
)

// StalePolicy says when a flag has become debt to clean up.
type StalePolicy struct {
	// UnusedFor: a flag not evaluated for this long (or never, once it is
	// this old) is stale. Default 30 days.
	UnusedFor time.Duration `json:"unused_for"`
	// FullFor: a flag at 100% for this long has done its job; the code
	// path should become the only one. Default 14 days.
	FullFor time.Duration `json:"full_for"`
}

func (p StalePolicy) withDefaults() StalePolicy {
	if p.UnusedFor <= 0 {
		p.UnusedFor = 30 * 24 * time.Hour
	}
	if p.FullFor <= 0 {
		p.FullFor = 14 * 24 * time.Hour
	}
	return p
}

// Debt is a flag that should be cleaned up, and why.
type Debt struct {
	Key   string `json:"key"`
	Owner string `json:"owner,omitempty"`
	Stage Stage  `json:"stage,omitempty"`
	// Reasons say why the flag is debt, in words.
	Reasons []string `json:"reasons"`
	// Expires is the flag's expiry, when it has one.
	Expires time.Time `json:"expires,omitzero"`
	// LastEvaluated is the time of its last evaluation, zero if never.
	LastEvaluated time.Time `json:"last_evaluated,omitzero"`
	// FullSince is when it reached 100%, zero if it has not.
	FullSince time.Time `json:"full_since,omitzero"`
}

// StaleFlags returns the flags that are debt under policy at now: past
// their expiry, not evaluated for policy.UnusedFor, or at 100% for
// policy.FullFor. Archived flags are reported only when they expired.
func StaleFlags(flags []*Flag, usage map[string]Usage, policy StalePolicy, now time.Time) []Debt {
	policy = policy.withDefaults()
	var out []Debt
	days := func(d time.Duration) int { return int(d.Hours() / 24) }
	for _, f := range flags {
		d := Debt{Key: f.Key, Owner: f.MetaString(MetaOwner), Stage: f.Stage(), Expires: f.MetaTime(MetaExpires),
			LastEvaluated: usage[f.Key].Last, FullSince: f.MetaTime(MetaFullSince)}
		if t, err := ParseTime(f.MetaString(MetaExpires)); err == nil {
			d.Expires = t
		}
		if !d.Expires.IsZero() && now.After(d.Expires) {
			d.Reasons = append(d.Reasons, fmt.Sprintf("expired on %s", d.Expires.Format(time.DateOnly)))
		}
		created := f.MetaTime(MetaCreated)
		if d.Stage != StageArchived {
			switch {
			case !d.LastEvaluated.IsZero() && now.Sub(d.LastEvaluated) >= policy.UnusedFor:
				d.Reasons = append(d.Reasons, fmt.Sprintf("not evaluated for %d days", days(now.Sub(d.LastEvaluated))))
			case d.LastEvaluated.IsZero() && !created.IsZero() && now.Sub(created) >= policy.UnusedFor:
				d.Reasons = append(d.Reasons, fmt.Sprintf("never evaluated in the %d days since it was created", days(now.Sub(created))))
			}
			if !d.FullSince.IsZero() && now.Sub(d.FullSince) >= policy.FullFor {
				d.Reasons = append(d.Reasons, fmt.Sprintf("at 100%% for %d days: remove the flag and keep the code path", days(now.Sub(d.FullSince))))
			}
		}
		if len(d.Reasons) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// Stale returns the flags that are debt now, with their owners.
func (s *Service) Stale(ctx context.Context) ([]Debt, error) {
	usage, err := s.Usage(ctx)
	if err != nil {
		return nil, err
	}
	return StaleFlags(s.snap.Load().Flags(), usage, s.stale, s.now()), nil
}
