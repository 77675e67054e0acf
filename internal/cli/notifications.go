package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/notify"
)

func (a *app) notificationsCommand() *cobra.Command {
	var (
		state string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "notifications",
		Short: "List webhook deliveries: sent, pending (retrying) and failed",
		Long: `List the webhook deliveries of the notification outbox, newest first: the
event, the webhook, its state (pending while it is retried, sent, failed
once given up), the attempts and the last error. See docs/notifications.md.`,
		Example: `  shipgate notifications --state pending
  shipgate notifications -o json`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ds, err := c.Notifications(cmd.Context(), state, limit)
			if err != nil {
				return err
			}
			return render(a, ds, func(ds []notify.Delivery) error {
				now := a.now()
				t := newTable(a.stdout, "ID", "EVENT", "TYPE", "WEBHOOK", "STATE", "ATTEMPTS", "NEXT", "LAST ERROR")
				for _, d := range ds {
					next := ""
					if d.State == notify.StatePending {
						next = clock(d.NextAt, now)
					}
					t.row(strconv.FormatInt(d.ID, 10), d.EventID, d.EventType, d.Webhook, d.State, strconv.Itoa(d.Attempts), next, d.LastError)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only deliveries in this state: pending, sent or failed")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many")
	return cmd
}
