package shopapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// product is one item of the catalog.
type product struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int    `json:"price_cents"`
}

// catalog is what the shop sells. The first product is the one a bare
// POST /cart or a /pay on an empty cart buys, so that a load generator can
// exercise the whole flow without building request bodies.
var catalog = []product{
	{ID: "mug", Name: "Shipgate mug", PriceCents: 1299},
	{ID: "tee", Name: "Canary T-shirt", PriceCents: 2499},
	{ID: "sticker", Name: "Rollback sticker pack", PriceCents: 499},
	{ID: "hoodie", Name: "Friday Deploy hoodie", PriceCents: 5999},
}

// lineItem is a quantity of one product in a cart or an order.
type lineItem struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// order is a paid cart.
type order struct {
	ID         string     `json:"id"`
	Items      []lineItem `json:"items"`
	TotalCents int        `json:"total_cents"`
	MerchantID string     `json:"merchant_id"`
}

// maxCarts bounds the memory that carts of many distinct users can take;
// beyond it an arbitrary cart is dropped, as a cache would.
const maxCarts = 10000

// guestUser owns the cart of requests without X-User-ID.
const guestUser = "guest"

// shop is the app's state: carts in memory, per user.
type shop struct {
	cfg     config
	orders  atomic.Int64
	metrics *metrics

	mu    sync.Mutex
	carts map[string][]lineItem
}

func newShop(cfg config) *shop {
	return &shop{cfg: cfg, carts: map[string][]lineItem{}, metrics: newMetrics(cfg.version)}
}

// handler returns the shop's routes, wrapped so that every response
// carries the version and every request but /healthz takes cfg.latency.
func (s *shop) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /{$}", s.slow(s.products))
	mux.Handle("GET /products", s.slow(s.products))
	mux.Handle("GET /cart", s.slow(s.getCart))
	mux.Handle("POST /cart", s.slow(s.addToCart))
	mux.Handle("GET /pay", s.slow(s.pay))
	mux.Handle("POST /pay", s.slow(s.pay))
	mux.Handle("GET /version", s.slow(s.versionInfo))
	counted := s.metrics.counted(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Shop-Version", s.cfg.version)
		switch r.URL.Path {
		case "/metrics":
			s.metrics.serve(w, r)
		case "/healthz":
			mux.ServeHTTP(w, r) // checks are not user traffic
		default:
			counted.ServeHTTP(w, r)
		}
	})
}

// slow delays h by about cfg.latency, a stand-in for real work that makes
// latency comparisons between two versions meaningful. The ±10% jitter
// keeps percentiles from collapsing onto one value.
func (s *shop) slow(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := s.cfg.latency; d > 0 {
			d = time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return // the client went away; nobody reads the answer
			}
		}
		h(w, r)
	})
}

func (s *shop) healthz(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.failHealth {
		http.Error(w, "unhealthy: started with --fail-health", http.StatusServiceUnavailable)
		return
	}
	if f := s.cfg.failHealthFile; f != "" {
		if _, err := os.Stat(f); err == nil {
			http.Error(w, "unhealthy: "+f+" exists", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *shop) products(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"products": catalog})
}

func (s *shop) versionInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.cfg.version})
}

func (s *shop) getCart(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	items := append([]lineItem{}, s.carts[user(r)]...)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "total_cents": total(items)})
}

// addToCart adds {"product_id": ..., "quantity": ...} to the user's cart.
// An empty body adds one of the first product.
func (s *shop) addToCart(w http.ResponseWriter, r *http.Request) {
	item := lineItem{ProductID: catalog[0].ID, Quantity: 1}
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&item)
	if err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error": `body must be JSON like {"product_id": "mug", "quantity": 1}: ` + err.Error(),
		})
		return
	}
	if _, ok := find(item.ProductID); !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("unknown product_id %q", item.ProductID)})
		return
	}
	if item.Quantity < 1 || item.Quantity > 100 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "quantity must be from 1 to 100"})
		return
	}

	u := user(r)
	s.mu.Lock()
	if _, ok := s.carts[u]; !ok && len(s.carts) >= maxCarts {
		for k := range s.carts {
			delete(s.carts, k)
			break
		}
	}
	s.carts[u] = append(s.carts[u], item)
	items := append([]lineItem{}, s.carts[u]...)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "total_cents": total(items)})
}

// pay charges the user's cart, or one of the first product when the cart
// is empty. A share cfg.payFailRate of payments is declined, which is the
// bug a canary has to catch.
func (s *shop) pay(w http.ResponseWriter, r *http.Request) {
	if rand.Float64() < s.cfg.payFailRate {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "payment declined by processor"})
		return
	}
	u := user(r)
	s.mu.Lock()
	items := s.carts[u]
	delete(s.carts, u)
	s.mu.Unlock()
	if len(items) == 0 {
		items = []lineItem{{ProductID: catalog[0].ID, Quantity: 1}}
	}
	o := order{
		ID:         fmt.Sprintf("ord-%06d", s.orders.Add(1)),
		Items:      items,
		TotalCents: total(items),
		MerchantID: s.cfg.merchantID,
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "order": o})
}

// user names the owner of a cart: the X-User-ID header, the same header
// Shipgate's router can use to keep a user on one version.
func user(r *http.Request) string {
	if u := r.Header.Get("X-User-ID"); u != "" {
		return u
	}
	return guestUser
}

func find(id string) (product, bool) {
	for _, p := range catalog {
		if p.ID == id {
			return p, true
		}
	}
	return product{}, false
}

func total(items []lineItem) int {
	var sum int
	for _, it := range items {
		p, _ := find(it.ProductID)
		sum += p.PriceCents * it.Quantity
	}
	return sum
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
