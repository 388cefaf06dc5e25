package otelcfg

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// fakeRoot is a target filesystem with the given files.
func fakeRoot(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		path := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func attrs(res *resource.Resource) map[string]string {
	m := map[string]string{}
	for _, kv := range res.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

type failingDetector struct{}

func (failingDetector) Name() string { return "broken" }
func (failingDetector) Detect(context.Context) ([]attribute.KeyValue, error) {
	return nil, errors.New("metadata service timed out")
}

func TestNewResource(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		"etc/machine-id": "0123456789abcdef0123456789abcdef\n",
		"etc/hostname":   "node-7\n",
	})
	var logs bytes.Buffer
	cfg := ResourceConfig{
		Root:           root,
		ServiceVersion: "1.2.3",
		ClusterName:    "prod-eu",
		Lookup: MapLookup(map[string]string{
			EnvK8sNodeName:             "node-7",
			EnvK8sPodName:              "gopatrol-x1",
			EnvK8sNamespaceName:        "gopatrol",
			"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,k8s.cluster.name=from-env,team=go%20tools",
		}),
		Hostname: func() (string, error) { return "gopatrol-x1", nil },
		Detectors: []Detector{
			failingDetector{},
			StaticDetector{"azure", []attribute.KeyValue{semconv.CloudProviderAzure, semconv.CloudPlatformAzureVM, semconv.CloudRegion("westeurope")}},
			StaticDetector{"aws", []attribute.KeyValue{semconv.CloudProviderAWS, semconv.CloudPlatformAWSEC2, semconv.CloudAccountID("123")}},
		},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	res, err := NewResource(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := attrs(res)
	want := map[string]string{
		"service.name":                "gopatrol",
		"service.version":             "1.2.3",
		"host.id":                     "0123456789abcdef0123456789abcdef",
		"host.name":                   "node-7", // the target's, not the pod's hostname
		"os.type":                     "linux",
		"k8s.node.name":               "node-7",
		"k8s.pod.name":                "gopatrol-x1",
		"k8s.namespace.name":          "gopatrol",
		"k8s.cluster.name":            "from-env", // OTEL_RESOURCE_ATTRIBUTES comes before config
		"deployment.environment.name": "prod",
		"team":                        "go tools",
		"cloud.provider":              "azure", // the first detector to answer wins
		"cloud.platform":              "azure.vm",
		"cloud.region":                "westeurope",
		"cloud.account.id":            "123", // no conflict: merged
	}
	if runtime.GOARCH == "amd64" {
		want["host.arch"] = "amd64"
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if res.SchemaURL() != "https://opentelemetry.io/schemas/1.43.0" {
		t.Errorf("schema URL %q", res.SchemaURL())
	}
	if len(got["service.instance.id"]) != 36 {
		t.Errorf("service.instance.id %q is not a UUID", got["service.instance.id"])
	}
	log := logs.String()
	for _, w := range []string{"key=cloud.provider", "kept=azure", "dropped=aws", "dropped_from=\"detector aws\"", "key=k8s.cluster.name", "dropped=prod-eu", "detector=broken", "metadata service timed out"} {
		if !strings.Contains(log, w) {
			t.Errorf("log does not contain %q:\n%s", w, log)
		}
	}

	// Stable per host and pod: a second run gets the same instance id, a
	// different host another.
	again, _ := NewResource(context.Background(), cfg)
	if attrs(again)["service.instance.id"] != got["service.instance.id"] {
		t.Errorf("service.instance.id changed between runs")
	}
	cfg.Root = fakeRoot(t, map[string]string{"etc/machine-id": "ffffffffffffffffffffffffffffffff"})
	other, _ := NewResource(context.Background(), cfg)
	if attrs(other)["service.instance.id"] == got["service.instance.id"] {
		t.Errorf("two hosts share service.instance.id %s", got["service.instance.id"])
	}
}

func TestNewResourceServiceNameAndFallbacks(t *testing.T) {
	root := fakeRoot(t, map[string]string{"var/lib/dbus/machine-id": "dbusid\n"})
	res, err := NewResource(context.Background(), ResourceConfig{
		Root:     root,
		Lookup:   MapLookup(map[string]string{"OTEL_SERVICE_NAME": "patrol-eu", "OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored"}),
		Hostname: func() (string, error) { return "laptop", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	got := attrs(res)
	if got["service.name"] != "patrol-eu" || got["host.id"] != "dbusid" || got["host.name"] != "laptop" {
		t.Errorf("service.name %q host.id %q host.name %q", got["service.name"], got["host.id"], got["host.name"])
	}
	if _, ok := got["k8s.node.name"]; ok {
		t.Errorf("k8s.node.name set without the Downward API variable")
	}

	// No machine-id at all: host.id is left out, not made up.
	res, _ = NewResource(context.Background(), ResourceConfig{Root: t.TempDir(), Lookup: MapLookup(nil)})
	if id, ok := attrs(res)["host.id"]; ok {
		t.Errorf("host.id = %q without a machine-id", id)
	}

	_, err = NewResource(context.Background(), ResourceConfig{Lookup: MapLookup(map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "a=1,oops"})})
	if err == nil || !strings.Contains(err.Error(), "OTEL_RESOURCE_ATTRIBUTES") || !strings.Contains(err.Error(), "oops") {
		t.Errorf("malformed OTEL_RESOURCE_ATTRIBUTES: %v", err)
	}
}

func TestHostArch(t *testing.T) {
	for goarch, want := range map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "arm32", "386": "x86", "ppc64le": "ppc64", "s390x": "s390x"} {
		kv, ok := hostArch(goarch)
		if !ok || kv.Value.AsString() != want {
			t.Errorf("hostArch(%s) = %v, want %s", goarch, kv.Value.Emit(), want)
		}
	}
	if _, ok := hostArch("wasm"); ok {
		t.Errorf("wasm has no semconv host.arch")
	}
}
