package report

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium returns the path of the Chromium binary (Debian's chromium
// package, installed by scripts/deps.sh test), or skips the test outside
// CI when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: scripts/deps.sh test installs it")
	}
	t.Skip("SKIPPED: chromium is not installed (apt-get install chromium)")
	return ""
}

// TestRender_HTMLInChromium opens the seeded report's HTML in a real
// headless Chromium and checks what a reader sees: the headline number,
// one drawn sparkline per key and app, and no console error.
func TestRender_HTMLInChromium(t *testing.T) {
	exe := chromium(t)
	var buf bytes.Buffer
	if err := Render(&buf, seededReport(t), FormatHTML); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(page, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	// Everything the page logs as an error or warning, from the console,
	// uncaught exceptions and the browser's log (failed loads, CSP...).
	var (
		mu       sync.Mutex
		problems []string
		wg       sync.WaitGroup
	)
	listen, stopListening := context.WithCancel(ctx)
	note := func(s string) { mu.Lock(); problems = append(problems, s); mu.Unlock() }
	console := chromedp.Events(listen, runtime.ConsoleAPICalled)
	exceptions := chromedp.Events(listen, runtime.ExceptionThrown)
	entries := chromedp.Events(listen, cdplog.EntryAdded)
	wg.Add(3)
	go func() {
		defer wg.Done()
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				msg := ""
				if len(ev.Args) > 0 {
					msg = string(ev.Args[0].Value)
				}
				note("console." + string(ev.Type) + " " + msg)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			note("exception: " + ev.ExceptionDetails.Text)
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				note("log " + string(ev.Entry.Level) + ": " + ev.Entry.Text)
			}
		}
	}()

	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page), chromedp.WaitVisible(chromedp.CSS("#headline"))); err != nil {
		t.Fatalf("chromium: open the report: %v", err)
	}
	headline, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#headline")))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	sparks, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.spark").length`))
	if err != nil {
		t.Fatal(err)
	}
	// A sparkline is drawn when the browser laid it out with a size and
	// its marks (dots, lines) have a box inside it.
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("svg.spark")].filter(s => {
		const r = s.getBoundingClientRect();
		const marks = [...s.querySelectorAll("circle, polyline")];
		return r.width > 100 && r.height > 20 && marks.length > 0 && marks.every(m => m.getBBox().height >= 0 && m.getBBox().x >= 0);
	}).length`))
	if err != nil {
		t.Fatal(err)
	}
	// The listeners work: a console error from the test itself is seen.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`console.error("probe from the test"), true`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		seen := slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "probe from the test") })
		mu.Unlock()
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the console listener did not see the test's own console.error")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopListening()
	wg.Wait()

	if !strings.Contains(headline, "66.7%") || !strings.Contains(headline, "4 of 6 deploys") {
		t.Fatalf("headline = %q, want the deploy success rate 66.7%% (4 of 6)", headline)
	}
	if !strings.Contains(title, "2026-W48") {
		t.Fatalf("title = %q", title)
	}
	// 5 keys x 2 apps, each with a value in at least one week.
	if sparks != 10 || drawn != 10 {
		t.Fatalf("sparklines: %d in the page, %d drawn with marks; want 10 and 10", sparks, drawn)
	}
	var others []string
	for _, p := range problems {
		if !strings.Contains(p, "probe from the test") {
			others = append(others, p)
		}
	}
	if len(others) > 0 {
		t.Fatalf("the page logged errors: %q", others)
	}
}
