// Command app is a tiny server for the process runtime's tests. It serves
// GET /healthz on 127.0.0.1:$PORT and prints its arguments, working
// directory and environment, so that tests can see what the runtime gave
// it. With --ignore-term it ignores SIGTERM, so that only SIGKILL stops it;
// with --spawn-sleeper it starts a child in its process group first.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"syscall"
)

func main() {
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	spawnSleeper := flag.Bool("spawn-sleeper", false, "start `sleep 300` as a child first")
	flag.String("tag", "", "ignored; lets tests check argument substitution")
	flag.Parse()

	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	for _, a := range os.Args[1:] {
		fmt.Println("arg", a)
	}
	wd, _ := os.Getwd()
	fmt.Println("cwd", wd)
	env := os.Environ()
	slices.Sort(env)
	for _, kv := range env {
		fmt.Println("env", kv)
	}
	if *spawnSleeper {
		sleeper := exec.Command("sleep", "300")
		if err := sleeper.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "app:", err)
			os.Exit(1)
		}
		fmt.Println("sleeper", sleeper.Process.Pid)
	}

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", os.Getenv("PORT")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
	fmt.Println("app listening", ln.Addr())
	http.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}
