package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/patientpulse/patientpulse/internal/httpx"
)

// Proxies are the reverse proxies in front of the server (a TLS
// terminator, a load balancer) whose X-Forwarded-For and
// X-Forwarded-Proto headers are believed. From any other peer those
// headers are ignored: anyone can send them.
type Proxies struct {
	nets []netip.Prefix
}

// ParseProxies parses CIDRs (or single addresses); it reports every bad
// one at once. No CIDRs trust no proxy.
func ParseProxies(cidrs []string) (*Proxies, error) {
	p := &Proxies{}
	var errs []error
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !strings.Contains(c, "/") {
			a, err := netip.ParseAddr(c)
			if err != nil {
				errs = append(errs, fmt.Errorf("trusted-proxies: %q is not a CIDR or an address", c))
				continue
			}
			p.nets = append(p.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		n, err := netip.ParsePrefix(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted-proxies: %q is not a CIDR or an address", c))
			continue
		}
		p.nets = append(p.nets, n.Masked())
	}
	return p, errors.Join(errs...)
}

// trusts reports whether the address is one of the proxies.
func (p *Proxies) trusts(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

type httpsKey struct{}

// Handler passes requests to next; one from a trusted proxy is passed as
// coming from the client the proxy names in X-Forwarded-For (the nearest
// address that is not itself a trusted proxy), and as HTTPS when
// X-Forwarded-Proto says https (see ForwardedHTTPS). The per-address
// lock-out, the audit log and everything else that reads the request's
// address then see the client, not the proxy.
func (p *Proxies) Handler(next http.Handler) http.Handler {
	if p == nil || len(p.nets) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.trusts(httpx.ClientIP(r)) {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		if strings.EqualFold(strings.TrimSpace(proto), "https") {
			ctx = context.WithValue(ctx, httpsKey{}, true)
		}
		r = r.WithContext(ctx)
		if client := p.client(r.Header.Values("X-Forwarded-For")); client != "" {
			r.RemoteAddr = net.JoinHostPort(client, "0")
		}
		next.ServeHTTP(w, r)
	})
}

// client is the address X-Forwarded-For names as the client: walking from
// the nearest hop back, the first that is not a trusted proxy (or the
// farthest when all are). "" when the header names none.
func (p *Proxies) client(values []string) string {
	var hops []string
	for _, v := range values {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	client := ""
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return client // a hop that is not an address: believe nothing before it
		}
		client = a.Unmap().String()
		if !p.trusts(client) {
			return client
		}
	}
	return client
}

// ForwardedHTTPS reports whether a trusted proxy said that r reached it
// over HTTPS (Proxies.Handler).
func ForwardedHTTPS(r *http.Request) bool {
	v, _ := r.Context().Value(httpsKey{}).(bool)
	return v
}

// HTTPS reports whether the client's connection is HTTPS: served with TLS
// here, or through a trusted proxy that says so.
func HTTPS(r *http.Request) bool { return r.TLS != nil || ForwardedHTTPS(r) }
