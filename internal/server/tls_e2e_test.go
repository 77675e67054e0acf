package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/server"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files, and returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shipgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "api.pem"), filepath.Join(dir, "api-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestServer_TLS is item 15 of issue 10: the API serves HTTPS with
// --tls-cert/--tls-key, and the CLI reaches it, trusting the CA named by
// $SHIPGATE_CA_CERT; plain HTTP gets nowhere.
func TestServer_TLS(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	cp := startWith(t, server.Options{TLSCert: certFile, TLSKey: keyFile})
	defer cp.Close(context.Background())
	if !strings.HasPrefix(cp.APIURL, "https://") {
		t.Fatalf("API URL %s, want https", cp.APIURL)
	}
	plain := "http://" + strings.TrimPrefix(cp.APIURL, "https://") + "/v1/status"
	if resp, err := http.Get(plain); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP answered %d", resp.StatusCode)
		}
	}
	t.Setenv("SHIPGATE_CA_CERT", certFile)
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), []string{"--server", cp.APIURL, "--token", cp.AdminToken, "status"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("status over HTTPS exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "app shop") {
		t.Fatalf("status over HTTPS printed:\n%s", out.String())
	}
}
