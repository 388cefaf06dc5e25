package kubernetes

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The openshift overlay offers the agents' /metrics to the cluster's
// monitoring (issue 18): a headless Service over the DaemonSet's pods and
// a ServiceMonitor that selects it, both decoded strictly by build. The
// eks and ack overlays ship neither (no Prometheus Operator assumed).
func TestOpenShiftServiceMonitor(t *testing.T) {
	o := build(t, "openshift")
	cfg, _ := agentConfig(t, o)
	if len(o.services) != 1 || len(o.monitors) != 1 {
		t.Fatalf("%d Services, %d ServiceMonitors: want one of each", len(o.services), len(o.monitors))
	}
	svc, sm := o.services[0], o.monitors[0]
	if svc.Namespace != o.ns.Name || sm.Namespace != o.ns.Name {
		t.Errorf("Service in %q, ServiceMonitor in %q, want %q", svc.Namespace, sm.Namespace, o.ns.Name)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service clusterIP %q: want None, one scrape target per agent", svc.Spec.ClusterIP)
	}
	// The Service selects the DaemonSet's pods and no others.
	podLabels := labels.Set(o.ds.Spec.Template.Labels)
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Errorf("Service selector %v does not select the DaemonSet's pods %v", svc.Spec.Selector, podLabels)
	}
	// The ServiceMonitor selects the Service, in its own namespace.
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not match the Service's labels %v", sm.Spec.Selector, svc.Labels)
	}
	if ns := sm.Spec.NamespaceSelector; ns.Any || (len(ns.MatchNames) > 0 && (len(ns.MatchNames) != 1 || ns.MatchNames[0] != o.ns.Name)) {
		t.Errorf("ServiceMonitor namespaceSelector %+v: want its own namespace only", ns)
	}
	// Its endpoint is the agent's listen port, through the Service, on
	// the path the agent serves.
	_, port, _ := strings.Cut(cfg.Listen, ":")
	c := o.ds.Spec.Template.Spec.Containers[0]
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %+v, want one", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == ep.Port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		t.Fatalf("ServiceMonitor endpoint port %q is not a port of Service %s", ep.Port, svc.Name)
	}
	target := sp.TargetPort.IntVal
	if name := sp.TargetPort.StrVal; name != "" {
		target = 0
		for _, p := range c.Ports {
			if p.Name == name {
				target = p.ContainerPort
			}
		}
	}
	if itoa(target) != port {
		t.Errorf("Service port %s targets %s (=%d), the agent listens on %s", sp.Name, sp.TargetPort.String(), target, cfg.Listen)
	}
	if ep.Path != "/metrics" || (ep.Scheme != nil && ep.Scheme.String() != "http") {
		t.Errorf("ServiceMonitor scrapes %v %s, want http /metrics (the agent's endpoint)", ep.Scheme, ep.Path)
	}
	// The agent serves /metrics only with the Prometheus exporter on.
	exporters := ""
	for _, e := range c.Env {
		if e.Name == "OTEL_METRICS_EXPORTER" {
			exporters = e.Value
		}
	}
	if !slices.Contains(strings.Split(exporters, ","), "prometheus") {
		t.Errorf("OTEL_METRICS_EXPORTER=%q: without prometheus the agent answers the ServiceMonitor's scrape with 404", exporters)
	}
	if ep.Interval == "" || ep.ScrapeTimeout == "" {
		t.Errorf("interval %q, scrapeTimeout %q: want both set", ep.Interval, ep.ScrapeTimeout)
	}
	// Only OpenShift ships it.
	for _, overlay := range []string{"eks", "ack"} {
		if o := build(t, overlay); len(o.monitors)+len(o.services) != 0 {
			t.Errorf("overlays/%s: %d ServiceMonitors, %d Services: the Prometheus Operator's types belong to openshift only", overlay, len(o.monitors), len(o.services))
		}
	}
}
