package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSCerts are a test CA and a server and a client certificate it
// signed, in memory and as PEM files in Dir under GnuTLS's names, which
// libnbd's tls-certificates, qemu's tls-creds-x509 and nbdkit's
// --tls-certificates all read: ca-cert.pem, server-cert.pem,
// server-key.pem, client-cert.pem, client-key.pem. The server certificate
// names localhost, 127.0.0.1 and ::1; it expires in a day.
type TLSCerts struct {
	Dir    string
	Pool   *x509.CertPool // holds the CA
	Server tls.Certificate
	Client tls.Certificate
}

// NewTLSCerts makes a fresh CA and certificates for one test.
func NewTLSCerts(t testing.TB) *TLSCerts {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert := newCert(t, nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "gdm test CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	})
	writePEM(t, dir, "ca-cert.pem", "CERTIFICATE", caCert.Raw)
	certs := &TLSCerts{Dir: dir, Pool: x509.NewCertPool()}
	certs.Pool.AddCert(caCert)
	certs.Server = leaf(t, dir, "server", caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	certs.Client = leaf(t, dir, "client", caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "gdm test client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return certs
}

// leaf makes a certificate signed by the CA and writes NAME-cert.pem and
// NAME-key.pem.
func leaf(t testing.TB, dir, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate, tmpl *x509.Certificate) tls.Certificate {
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	key, cert := newCert(t, caKey, ca, tmpl)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, dir, name+"-cert.pem", "CERTIFICATE", cert.Raw)
	writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", der)
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// newCert makes a key and a certificate from tmpl, signed by parent's key,
// or self-signed when parent is nil.
func newCert(t testing.TB, parentKey *ecdsa.PrivateKey, parent, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// InstallServer copies the server certificate and key to cert and key,
// the paths a server under test reads (again, on a reload).
func (c *TLSCerts) InstallServer(t testing.TB, cert, key string) {
	t.Helper()
	for from, to := range map[string]string{"server-cert.pem": cert, "server-key.pem": key} {
		data, err := os.ReadFile(filepath.Join(c.Dir, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
