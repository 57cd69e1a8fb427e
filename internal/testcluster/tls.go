package testcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// tlsMaterial holds the PEM files written for a TLS cluster and the CA pool
// clients use to verify the nodes.
type tlsMaterial struct {
	caFile   string
	certFile string
	keyFile  string
	pool     *x509.CertPool
}

// newTLSMaterial creates a fresh CA plus one certificate/key pair used by
// every node (as server certificate and as client certificate on the TLS
// cluster bus and for replication), and writes them as PEM into dir.
func newTLSMaterial(dir string) (*tlsMaterial, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, caKey, err := newCA("go-hammer testcluster CA")
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "go-hammer testcluster node", Organization: []string{"go-hammer"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Nodes present this certificate both as servers and, on the
		// cluster bus and replication links, as clients.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create node certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return nil, err
	}
	m := &tlsMaterial{
		caFile:   filepath.Join(dir, "ca.crt"),
		certFile: filepath.Join(dir, "node.crt"),
		keyFile:  filepath.Join(dir, "node.key"),
		pool:     x509.NewCertPool(),
	}
	m.pool.AddCert(ca)
	files := []struct {
		path, typ string
		der       []byte
	}{
		{m.caFile, "CERTIFICATE", ca.Raw},
		{m.certFile, "CERTIFICATE", leafDER},
		{m.keyFile, "PRIVATE KEY", keyDER},
	}
	for _, f := range files {
		data := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(f.path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// newCA returns a self-signed ECDSA P-256 CA certificate and its key.
func newCA(cn string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"go-hammer"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// TLSConfig returns a new client *tls.Config that trusts the cluster's CA
// (RootCAs) and nothing else. ServerName is left empty: Go's TLS dialer then
// verifies the IP SAN 127.0.0.1 of the node certificates. No client
// certificate is included because the nodes run with
// --tls-auth-clients no. It returns nil for a cluster started without TLS.
// Each call returns a fresh value that the caller may modify.
func (c *Cluster) TLSConfig() *tls.Config {
	if c.tls == nil {
		return nil
	}
	return &tls.Config{RootCAs: c.tls.pool, MinVersion: tls.VersionTLS12}
}

// WrongCATLSConfig returns a client *tls.Config whose only trusted root is a
// freshly generated CA that signed none of the cluster's certificates, so a
// TLS handshake with any testcluster node fails certificate verification.
// Use it to test that an untrusted server is rejected.
func WrongCATLSConfig() *tls.Config {
	ca, _, err := newCA("go-hammer testcluster untrusted CA")
	if err != nil {
		// crypto/rand and ECDSA key generation do not fail in practice.
		panic("testcluster: generating untrusted CA: " + err.Error())
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
