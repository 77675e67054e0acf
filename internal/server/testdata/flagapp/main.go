// Command flagapp is the app of the end-to-end tests of guarded flag
// rollouts: for each request it asks Shipgate's OFREP endpoint for the
// flag "checkout" for the user in X-User-ID and reports the variant it
// served in X-Flag-checkout, as an app behind the builtin router does for
// the router to count flag-on and flag-off traffic. It serves "off" (the
// code default) while Shipgate cannot answer.
//
// OFREP_URL is the server's API URL, or OFREP_URL_FILE a file of several
// servers' URLs, one a line, tried in order; OFREP_KEY_FILE holds the
// flag client key. The files are read at each request, so that a test
// writes them once the servers are up.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	port := flag.Int("port", 0, "port to listen on")
	flag.Parse()
	keyFile := os.Getenv("OFREP_KEY_FILE")
	hc := &http.Client{Timeout: time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		variant := "off"
		for _, url := range urls() {
			on, err := evaluate(hc, url, keyFile, r.Header.Get("X-User-ID"))
			if err != nil {
				continue
			}
			if on {
				variant = "on"
			}
			break
		}
		w.Header().Set("X-Flag-checkout", variant)
		_, _ = w.Write([]byte(variant + "\n"))
	})
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", *port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

func urls() []string {
	if f := os.Getenv("OFREP_URL_FILE"); f != "" {
		b, _ := os.ReadFile(f)
		return strings.Fields(string(b))
	}
	return []string{os.Getenv("OFREP_URL")}
}

func evaluate(hc *http.Client, url, keyFile, user string) (bool, error) {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return false, err
	}
	body, _ := json.Marshal(map[string]any{"context": map[string]any{"targetingKey": user}})
	req, err := http.NewRequest(http.MethodPost, url+"/ofrep/v1/evaluate/flags/checkout", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var out struct {
		Value bool `json:"value"`
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("OFREP answered %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Value, err
}
