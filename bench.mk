# bench-router measures the builtin router (internal/proxy): its Go
# benchmarks (direct vs through the proxy, and the split decision alone),
# then a load run with wrk against the app directly, nginx doing the same
# 90/10 split, and the proxy, one after another. Needs nginx and wrk
# (apt-get install nginx-light wrk) for the load run; without wrk it uses a
# Go load generator, without nginx it skips that row. Results and how to
# read them: BENCHMARKS.md, "## Router".
.PHONY: bench-router
bench-router:
	$(GO) test -run '^$$' -bench . -benchmem -count=5 ./internal/proxy/
	$(GO) run ./bench/routerload -duration 10s -warmup 2s -connections 64 -threads 2
