package rollout

import (
	"context"

	"github.com/shipgate/shipgate/internal/audit"
)

// CommandData is the key, in an audit event's data, of the command (by
// its ID in the store's commands table) that the change it records
// carries out.
const CommandData = "command"

type commandCtx struct{}

// WithCommand returns ctx carrying the identity of the stored command a
// call carries out (internal/ha: the command's ID in the commands table).
// Every audit event the engine commits with that ctx, in the same
// transaction as the rollout it creates or changes, records the identity
// under CommandData, so a leader that claims the command again after
// another one died finds exactly what the earlier attempt did, whatever
// either machine's clock says. The engine reads it at one place, the
// commit (stampingStore), rather than through a request field: every
// request type, and the requests the engine makes of itself (Retry's
// Deploy), carry it without each of them copying a field; and clients
// cannot set it in the JSON of a request. A request the engine hands to
// a running rollout's driver (a rollback, promote, pause or resume while
// it runs) is committed by the driver, not under ctx: it carries the
// identity in Failure.Command.
func WithCommand(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, commandCtx{}, id)
}

// CommandOf is the command identity ctx carries, or "".
func CommandOf(ctx context.Context) string {
	id, _ := ctx.Value(commandCtx{}).(string)
	return id
}

// stampingStore records the command a commit carries out (WithCommand) in
// the data of each of its audit events.
type stampingStore struct{ Store }

func (s stampingStore) Commit(ctx context.Context, c Change) error {
	if id := CommandOf(ctx); id != "" && len(c.Audit) > 0 {
		evs := make([]audit.Event, len(c.Audit))
		for i, ev := range c.Audit {
			data := make(map[string]string, len(ev.Data)+1)
			for k, v := range ev.Data {
				data[k] = v
			}
			data[CommandData] = id
			ev.Data = data
			evs[i] = ev
		}
		c.Audit = evs
	}
	return s.Store.Commit(ctx, c)
}

// stampCommand records in ev the command (id, when not "") that a driver
// carries out for a request handed to it (Failure.Command).
func stampCommand(ev audit.Event, id string) {
	if id != "" {
		ev.Data[CommandData] = id
	}
}
