package notify

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Payload formats.
const (
	FormatJSON     = "json"
	FormatCDEvents = "cdevents"
	FormatSlack    = "slack"
	FormatTeams    = "teams"
)

// SchemaVersion names the generic JSON payload's schema (docs/notifications.md).
const SchemaVersion = "shipgate.notification/v1"

// Payload returns the body a receiver of format gets for ev.
func Payload(format string, ev Event) ([]byte, error) {
	var v any
	switch format {
	case FormatJSON, "":
		v = struct {
			Schema string `json:"schema"`
			Event
		}{SchemaVersion, ev}
	case FormatCDEvents:
		v = cdevent(ev)
	case FormatSlack:
		v = slackMessage(ev)
	case FormatTeams:
		v = teamsMessage(ev)
	default:
		return nil, fmt.Errorf("payload: unknown format %q", format)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("payload %s of %s: %w", format, ev.ID, err)
	}
	return b, nil
}

// cdeventTypes maps triggers to CDEvents 0.4 types; the others are sent
// as custom events (dev.cdeventsx.shipgate-...), as the spec allows.
var cdeventTypes = map[string]string{
	RolloutSucceeded:  "dev.cdevents.service.deployed.0.2.0",
	RolloutRolledBack: "dev.cdevents.service.rolledback.0.2.0",
	IncidentOpened:    "dev.cdevents.incident.detected.0.2.0",
	IncidentResolved:  "dev.cdevents.incident.resolved.0.2.0",
}

func cdevent(ev Event) map[string]any {
	typ, ok := cdeventTypes[ev.Type]
	if !ok {
		typ = "dev.cdeventsx.shipgate-" + ev.Type + ".0.1.0"
	}
	content := map[string]any{}
	switch ev.Type {
	case RolloutSucceeded, RolloutRolledBack:
		content["environment"] = map[string]string{"id": ev.Env, "source": "shipgate"}
		content["artifactId"] = "pkg:generic/" + ev.App + "@" + ev.Version
	case IncidentOpened, IncidentResolved:
		content["environment"] = map[string]string{"id": ev.Env, "source": "shipgate"}
		content["description"] = ev.Reason
		content["service"] = map[string]string{"id": ev.App, "source": "shipgate"}
	default:
		content["title"] = ev.Title
	}
	subject := ev.App
	if subject == "" {
		subject = ev.ID
	}
	return map[string]any{
		"context": map[string]any{
			"specversion": "0.4.1",
			"id":          ev.ID,
			"source":      "shipgate",
			"type":        typ,
			"timestamp":   ev.Time.UTC().Format(time.RFC3339Nano),
		},
		"subject": map[string]any{"id": subject, "source": "shipgate", "content": content},
		// customData carries Shipgate's own event, for receivers that want
		// the reason and the gate evidence.
		"customData":            ev,
		"customDataContentType": "application/json",
	}
}

// colour says how bad a notification is, for chat formats.
func colour(ev Event) (slack, teams string) {
	switch ev.Type {
	case RolloutRolledBack, FlagGuardDisabled, IncidentOpened:
		return "danger", "Attention"
	case GateBypassed, RolloutWaitingApproval, RolloutPaused, RetireReenabled:
		return "warning", "Warning"
	case RolloutSucceeded, IncidentResolved:
		return "good", "Good"
	default:
		return "#439FE0", "Default"
	}
}

// facts are the details people read in chat: actor, reason, evidence.
func facts(ev Event) [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	add("app", ev.App)
	add("environment", ev.Env)
	add("version", ev.Version)
	if ev.Rollout != 0 {
		add("rollout", strconv.FormatInt(ev.Rollout, 10))
	}
	add("by", ev.Actor)
	add("why", ev.Reason)
	for _, k := range slices.Sorted(maps.Keys(ev.Data)) {
		if k != "rollout" {
			add(k, ev.Data[k])
		}
	}
	return out
}

func slackMessage(ev Event) map[string]any {
	color, _ := colour(ev)
	var fields []map[string]any
	for _, f := range facts(ev) {
		fields = append(fields, map[string]any{"title": f[0], "value": f[1], "short": len(f[1]) < 40})
	}
	return map[string]any{
		"text": ev.Title,
		"attachments": []map[string]any{{
			"fallback": ev.Title, "color": color, "title": ev.Title, "fields": fields,
			"footer": "shipgate · " + ev.ID, "ts": ev.Time.Unix(),
		}},
	}
}

func teamsMessage(ev Event) map[string]any {
	_, style := colour(ev)
	var fs []map[string]string
	for _, f := range facts(ev) {
		fs = append(fs, map[string]string{"title": f[0], "value": f[1]})
	}
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body": []map[string]any{
			{"type": "Container", "style": style, "items": []map[string]any{
				{"type": "TextBlock", "text": ev.Title, "weight": "Bolder", "size": "Medium", "wrap": true},
			}},
			{"type": "FactSet", "facts": fs},
			{"type": "TextBlock", "text": "shipgate · " + ev.ID + " · " + ev.Time.UTC().Format(time.RFC3339), "isSubtle": true, "size": "Small"},
		},
	}
	return map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	}
}
