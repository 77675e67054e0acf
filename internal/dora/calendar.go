package dora

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Calendar says where weeks begin: at 00:00 of WeekStart in Location (UTC
// when nil). DefaultCalendar is the usual Monday start.
type Calendar struct {
	Location  *time.Location
	WeekStart time.Weekday
}

// DefaultCalendar returns weeks that start on Monday 00:00 in loc (UTC
// when nil).
func DefaultCalendar(loc *time.Location) Calendar {
	return Calendar{Location: loc, WeekStart: time.Monday}
}

func (c Calendar) loc() *time.Location {
	if c.Location == nil {
		return time.UTC
	}
	return c.Location
}

// WeekOf returns the start of the week that holds t.
func (c Calendar) WeekOf(t time.Time) time.Time {
	l := t.In(c.loc())
	back := (int(l.Weekday()) - int(c.WeekStart) + 7) % 7
	d := l.AddDate(0, 0, -back)
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, c.loc())
}

// NextWeek returns the start of the week after the one starting at start.
// Weeks are 7 calendar days, so a week that crosses a daylight-saving
// change lasts 167 or 169 hours.
func (c Calendar) NextWeek(start time.Time) time.Time {
	l := start.In(c.loc())
	return time.Date(l.Year(), l.Month(), l.Day()+7, 0, 0, 0, 0, c.loc())
}

// AddWeeks moves a week start by n weeks (n may be negative).
func (c Calendar) AddWeeks(start time.Time, n int) time.Time {
	l := start.In(c.loc())
	return time.Date(l.Year(), l.Month(), l.Day()+7*n, 0, 0, 0, 0, c.loc())
}

// Day returns the calendar date of t in the calendar's zone, as
// "2006-01-02": what counts as one deploy-day.
func (c Calendar) Day(t time.Time) string { return t.In(c.loc()).Format(time.DateOnly) }

var isoWeekPattern = regexp.MustCompile(`^(\d{4})-W(\d{2})$`)

// ParseWeek reads a week as "last" (the last full week before now),
// "this" (the week holding now) or an ISO 8601 week "2026-W48". An ISO
// week names the calendar week that holds that ISO week's Monday, so with
// the default Monday start it is exactly the ISO week. It returns the
// week's start.
func (c Calendar) ParseWeek(s string, now time.Time) (time.Time, error) {
	switch s {
	case "this":
		return c.WeekOf(now), nil
	case "last", "":
		return c.AddWeeks(c.WeekOf(now), -1), nil
	}
	m := isoWeekPattern.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("week %q: want last, this or an ISO week such as 2026-W48", s)
	}
	year, _ := strconv.Atoi(m[1])
	week, _ := strconv.Atoi(m[2])
	// ISO week 1 is the week with the year's first Thursday; 4 January is
	// always in it.
	jan4 := time.Date(year, time.January, 4, 0, 0, 0, 0, time.UTC)
	monday1 := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	if _, last := time.Date(year, time.December, 28, 0, 0, 0, 0, time.UTC).ISOWeek(); week < 1 || week > last {
		return time.Time{}, fmt.Errorf("week %q: %d has weeks 1 to %d", s, year, last)
	}
	monday := monday1.AddDate(0, 0, 7*(week-1))
	local := time.Date(monday.Year(), monday.Month(), monday.Day(), 0, 0, 0, 0, c.loc())
	return c.WeekOf(local), nil
}

// WeekName names the week starting at start by the ISO week of its
// Monday's date, "2026-W48".
func (c Calendar) WeekName(start time.Time) string {
	l := start.In(c.loc())
	back := (int(l.Weekday()) + 6) % 7 // days since Monday
	monday := l.AddDate(0, 0, -back)
	if back != 0 {
		// The week does not start on Monday: name it by the Monday inside it.
		monday = l.AddDate(0, 0, 7-back)
	}
	y, w := monday.ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w)
}
