package sdk

// Resource attribute names and values, exactly as OpenTelemetry semantic
// conventions v1.43.0 spell them (go.opentelemetry.io/otel/semconv/v1.43.0,
// the version otelcfg pins). They are mirrored as plain strings so that a
// probe binary does not link the OTel SDK; attributes_test.go fails if they
// drift from the semconv package.
const (
	CloudProvider         = "cloud.provider"
	CloudPlatform         = "cloud.platform"
	CloudRegion           = "cloud.region"
	CloudAvailabilityZone = "cloud.availability_zone"
	CloudAccountID        = "cloud.account.id"
	CloudResourceID       = "cloud.resource_id"
	HostID                = "host.id"
	HostType              = "host.type"
	HostName              = "host.name"
	K8sClusterName        = "k8s.cluster.name"
	K8sNodeName           = "k8s.node.name"
)

// cloud.provider values.
const (
	ProviderAWS      = "aws"
	ProviderAlibaba  = "alibaba_cloud"
	ProviderGCP      = "gcp"
	ProviderAzure    = "azure"
	ProviderIBMCloud = "ibm_cloud"
)

// cloud.platform values.
const (
	PlatformAWSEC2              = "aws_ec2"
	PlatformAlibabaECS          = "alibaba_cloud_ecs"
	PlatformGCPComputeEngine    = "gcp_compute_engine"
	PlatformGCPKubernetesEngine = "gcp_kubernetes_engine"
	PlatformAzureVM             = "azure.vm"
	PlatformAWSOpenShift        = "aws_openshift"
	PlatformAzureOpenShift      = "azure.openshift"
	PlatformGCPOpenShift        = "gcp_openshift"
	PlatformIBMCloudOpenShift   = "ibm_cloud_openshift"
	PlatformAlibabaOpenShift    = "alibaba_cloud_openshift"
)
