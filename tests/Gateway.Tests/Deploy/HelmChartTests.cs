using System.Text;
using YamlDotNet.Serialization;
using Microsoft.Extensions.Configuration;

namespace Gateway.Tests.Deploy;

/// <summary>
/// The chart checked with the real helm (v4, installed by tools/ensure-tools.sh): lint --strict and template with
/// default and production-like values, then the rendered objects. Missing helm fails these tests.
/// </summary>
public class HelmChartTests
{
    private static readonly string Chart = RepoTools.InRepo("helm", "llm-gateway");
    private static readonly string ProductionValues = RepoTools.InRepo("deploy", "values-production.yaml");

    private sealed record K8sObject(string Kind, string Name, Dictionary<object, object> Root)
    {
        public object? At(params object[] path)
        {
            object? cur = Root;
            foreach (var p in path)
            {
                cur = (cur, p) switch
                {
                    (Dictionary<object, object> d, string k) => d.TryGetValue(k, out var v) ? v : null,
                    (List<object> l, int i) => i < l.Count ? l[i] : null,
                    _ => null,
                };
                if (cur is null) return null;
            }
            return cur;
        }

        public string? Str(params object[] path) => At(path)?.ToString();
    }

    private static RepoTools.Result Helm(params string[] args) => RepoTools.Run(RepoTools.Require("helm"), args, timeoutSeconds: 120);

    private static List<K8sObject> Template(params string[] extra)
    {
        var r = Helm(["template", "llm", Chart, "--namespace", "llm", .. extra]);
        Assert.True(r.ExitCode == 0, "helm template failed: " + RepoTools.Describe(r));
        var deserializer = new DeserializerBuilder().Build();
        var list = new List<K8sObject>();
        foreach (string doc in r.StdOut.Split("\n---", StringSplitOptions.RemoveEmptyEntries))
        {
            if (deserializer.Deserialize<object>(doc) is not Dictionary<object, object> root) continue;
            string kind = root["kind"].ToString()!;
            string name = ((Dictionary<object, object>)root["metadata"])["name"].ToString()!;
            list.Add(new K8sObject(kind, name, root));
        }
        return list;
    }

    private static K8sObject One(List<K8sObject> objs, string kind, string nameSuffix) =>
        Assert.Single(objs, o => o.Kind == kind && o.Name.EndsWith(nameSuffix, StringComparison.Ordinal));

    [Fact]
    public void Helm_IsInstalled_Version4()
    {
        var r = Helm("version", "--short");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("v4.", r.StdOut.Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public void HelmLintStrict_DefaultAndProductionValues_Pass()
    {
        var d = Helm("lint", "--strict", Chart);
        Assert.True(d.ExitCode == 0, RepoTools.Describe(d));
        var p = Helm("lint", "--strict", Chart, "-f", ProductionValues);
        Assert.True(p.ExitCode == 0, RepoTools.Describe(p));
    }

    [Fact]
    public void Template_DefaultValues_AllComponentsWithProbesDrainAndBudgets()
    {
        var objs = Template();
        var kinds = objs.Select(o => o.Kind).ToHashSet();
        foreach (string k in new[] { "Deployment", "StatefulSet", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceAccount" })
            Assert.Contains(k, kinds);
        Assert.DoesNotContain("ServiceMonitor", kinds); // optional, off by default

        var gw = One(objs, "Deployment", "-gateway");
        var c = (Dictionary<object, object>)gw.At("spec", "template", "spec", "containers", 0)!;
        var pod = new K8sObject("Pod", "gw", (Dictionary<object, object>)gw.At("spec", "template", "spec")!);
        Assert.Equal("/healthz", pod.Str("containers", 0, "livenessProbe", "httpGet", "path"));
        Assert.Equal("/readyz", pod.Str("containers", 0, "readinessProbe", "httpGet", "path"));
        var preStop = (List<object>)pod.At("containers", 0, "lifecycle", "preStop", "exec", "command")!;
        Assert.Equal("sleep", preStop[0]);
        int sleep = int.Parse(preStop[1].ToString()!, System.Globalization.CultureInfo.InvariantCulture);
        int grace = int.Parse(pod.Str("terminationGracePeriodSeconds")!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(grace > sleep + 30, $"grace {grace}s must cover preStop {sleep}s and the drain");
        Assert.Equal("true", pod.Str("securityContext", "runAsNonRoot"), ignoreCase: true);
        Assert.NotNull(pod.Str("containers", 0, "resources", "requests", "cpu")); // the HPA needs CPU requests
        Assert.Null(gw.At("spec", "replicas")); // the HPA owns the replica count

        var hpa = One(objs, "HorizontalPodAutoscaler", "-gateway");
        Assert.Equal(gw.Name, hpa.Str("spec", "scaleTargetRef", "name"));
        var pdb = One(objs, "PodDisruptionBudget", "-gateway");
        Assert.Equal("gateway", pdb.Str("spec", "selector", "matchLabels", "app.kubernetes.io/component"));

        var worker = One(objs, "StatefulSet", "-worker");
        Assert.Equal("1", worker.Str("spec", "template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"));
        Assert.Equal("1", worker.Str("spec", "template", "spec", "containers", 0, "resources", "requests", "nvidia.com/gpu"));
        // Workers leave without cutting streams: preStop sleep, then SIGTERM drains for --drain-timeout, inside the grace period.
        Assert.Equal("sleep", worker.Str("spec", "template", "spec", "containers", 0, "lifecycle", "preStop", "exec", "command", 0));
        Assert.Equal("/readyz", worker.Str("spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet", "path"));
        var workerArgs = Enumerable.Range(0, 12).Select(i => worker.At("spec", "template", "spec", "containers", 0, "args", i)?.ToString()).ToList();
        int drainAt = workerArgs.IndexOf("--drain-timeout");
        Assert.True(drainAt >= 0, string.Join(' ', workerArgs));
        Assert.True(int.Parse(workerArgs[drainAt + 1]!, System.Globalization.CultureInfo.InvariantCulture)
            < int.Parse(worker.Str("spec", "template", "spec", "terminationGracePeriodSeconds")!, System.Globalization.CultureInfo.InvariantCulture));
        var headless = One(objs, "Service", "-worker-headless");
        Assert.Equal("None", headless.Str("spec", "clusterIP"));
        Assert.Equal(headless.Name, worker.Str("spec", "serviceName"));

        // The gateway discovers the workers through that headless Service's DNS name.
        string config = One(objs, "ConfigMap", "-gateway").Str("data", "gateway.yaml")!;
        var cfg = new DeserializerBuilder().Build().Deserialize<Dictionary<object, object>>(config);
        var gwCfg = new K8sObject("cfg", "cfg", cfg);
        Assert.Equal("Dns", gwCfg.Str("Gateway", "Workers", "Mode"));
        Assert.Equal($"{headless.Name}.llm.svc.cluster.local", gwCfg.Str("Gateway", "Workers", "Dns", "Host"));
        Assert.Equal("false", gwCfg.Str("Gateway", "Auth", "DemoKey", "Enabled"), ignoreCase: true);
        Assert.Equal("hfair", gwCfg.Str("Gateway", "Scheduling", "Policy"));
        Assert.Equal("shadow", gwCfg.Str("Gateway", "Agents", "Mode")); // retention hints validated before they are sent
        Assert.Equal("predictive", gwCfg.Str("Gateway", "Agents", "Policy"));
        Assert.Equal("0.0.0.0", new Uri(gwCfg.Str("Gateway", "Listen")!).Host);

        // /metrics and /status (every tenant's figures) only on the management port, behind a ClusterIP Service of its
        // own; the client Service carries the API port alone.
        var ports = ((List<object>)c["ports"]).Cast<Dictionary<object, object>>().ToDictionary(p => p["name"].ToString()!, p => p["containerPort"].ToString());
        Assert.Equal("9090", ports["management"]);
        var managementEnv = ((List<object>)c["env"]).Cast<Dictionary<object, object>>().Single(e => (string)e["name"] == "Gateway__ManagementListen");
        Assert.Equal("http://0.0.0.0:9090", managementEnv["value"]);
        var clientSvc = One(objs, "Service", "-gateway");
        Assert.Equal(["http"], ((List<object>)clientSvc.At("spec", "ports")!).Cast<Dictionary<object, object>>().Select(p => p["name"].ToString()));
        var managementSvc = One(objs, "Service", "-gateway-management");
        Assert.Equal("ClusterIP", managementSvc.Str("spec", "type"));
        Assert.Equal("management", managementSvc.Str("spec", "ports", 0, "targetPort"));

        // Bundled Redis, reachable under the address given to the gateway.
        var redisSvc = One(objs, "Service", "-redis");
        var env = (List<object>)c["env"];
        var redisEnv = env.Cast<Dictionary<object, object>>().Single(e => (string)e["name"] == "Gateway__State__Redis");
        Assert.Equal($"{redisSvc.Name}:6379", redisEnv["value"]);
    }

    [Fact]
    public void Template_NetworkPolicies_WorkersAndRedisOnlyFromGateway()
    {
        var objs = Template();
        foreach (string component in new[] { "worker", "redis" })
        {
            var np = One(objs, "NetworkPolicy", "-" + component);
            Assert.Equal(component, np.Str("spec", "podSelector", "matchLabels", "app.kubernetes.io/component"));
            Assert.Equal("gateway", np.Str("spec", "ingress", 0, "from", 0, "podSelector", "matchLabels", "app.kubernetes.io/component"));
            Assert.Contains("Ingress", (List<object>)np.At("spec", "policyTypes")!);
        }
        var gwNp = One(objs, "NetworkPolicy", "-gateway");
        Assert.Contains("Egress", (List<object>)gwNp.At("spec", "policyTypes")!);
    }

    [Fact]
    public void Template_ProductionValues_ScaledMonitoredExternalRedisGpus()
    {
        var objs = Template("-f", ProductionValues);
        var monitor = Assert.Single(objs, o => o.Kind == "ServiceMonitor");
        Assert.Equal("management", monitor.Str("spec", "endpoints", 0, "port"));
        var managementSvc = One(objs, "Service", "-gateway-management");
        foreach (var label in (Dictionary<object, object>)monitor.At("spec", "selector", "matchLabels")!)
            Assert.Equal(label.Value.ToString(), managementSvc.Str("metadata", "labels", label.Key.ToString()!)); // it selects that Service
        Assert.Null(One(objs, "Service", "-gateway").Str("metadata", "labels", "llm-gateway/port")); // and not the client one
        var gwNp = One(objs, "NetworkPolicy", "-gateway");
        Assert.Equal("management", gwNp.Str("spec", "ingress", 1, "ports", 0, "port"));
        Assert.Equal("monitoring", gwNp.Str("spec", "ingress", 1, "from", 0, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name"));
        Assert.Equal("ingress-nginx", gwNp.Str("spec", "ingress", 0, "from", 0, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name"));
        Assert.Single((List<object>)gwNp.At("spec", "ingress", 0, "from")!); // scrapers no longer reach the API port
        Assert.DoesNotContain(objs, o => o.Kind == "StatefulSet" && o.Name.EndsWith("-redis", StringComparison.Ordinal));
        var hpa = One(objs, "HorizontalPodAutoscaler", "-gateway");
        Assert.Equal("3", hpa.Str("spec", "minReplicas"));
        Assert.Equal("20", hpa.Str("spec", "maxReplicas"));
        Assert.Equal("2", One(objs, "PodDisruptionBudget", "-gateway").Str("spec", "minAvailable"));
        var worker = One(objs, "StatefulSet", "-worker");
        Assert.Equal("8", worker.Str("spec", "replicas"));
        Assert.Equal("4", worker.Str("spec", "template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"));
        var gw = One(objs, "Deployment", "-gateway");
        var env = ((List<object>)gw.At("spec", "template", "spec", "containers", 0, "env")!).Cast<Dictionary<object, object>>().ToList();
        var redis = env.Single(e => (string)e["name"] == "Gateway__State__Redis");
        Assert.True(redis.ContainsKey("valueFrom"), "an external Redis spec with a password must come from a Secret");
        var envFrom = (List<object>)gw.At("spec", "template", "spec", "containers", 0, "envFrom")!;
        Assert.Equal(2, envFrom.Count);
        var secret = One(objs, "Secret", "-auth");
        var data = (Dictionary<object, object>)secret.At("data")!;
        Assert.Equal(3, data.Keys.Count(k => k.ToString()!.StartsWith("Gateway__Auth__Keys__", StringComparison.Ordinal)));
        Assert.DoesNotContain("Gateway__Auth__ServerSecret", data.Keys.Select(k => k.ToString()));

        // The tenant tree and scheduler reach the gateway's own options binder from the rendered ConfigMap.
        string config = One(objs, "ConfigMap", "-gateway").Str("data", "gateway.yaml")!;
        var options = new ConfigurationBuilder()
            .AddInMemoryCollection(Gateway.Configuration.YamlConfigurationExtensions.FlattenYaml(config)).Build()
            .GetSection("Gateway").Get<Gateway.Configuration.GatewayOptions>()!;
        Assert.Equal("hfair", options.Scheduling.Policy);
        var acme = options.Scheduling.Tenants.Single(t => t.Name == "acme");
        Assert.Equal(3, acme.Weight);
        Assert.Equal(4_000_000, acme.TokensPerMinute);
        Assert.Equal(256, acme.Children.Single(c => c.Name == "agents").MaxConcurrent);
        var batch = options.Scheduling.Tenants.Single(t => t.Name == "globex").Children.Single();
        Assert.Equal(Gateway.Core.Tenancy.PriorityClass.Batch, batch.Priority);
        Assert.True(batch.Sheddable);
        Assert.Equal(TimeSpan.FromMinutes(5), batch.QueueTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Scheduling.DefaultQueueTimeout);
    }

    [Fact]
    public void Template_Secrets_DigestsOnlyNeverPlaintextKeys()
    {
        const string digest = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        var objs = Template("--set", "auth.serverSecret=s3rv3r-s3cr3t", "--set", "auth.keys[0].tenant=acme/search/ci",
            "--set", "auth.keys[0].hash=" + digest);
        var secret = One(objs, "Secret", "-auth");
        var data = ((Dictionary<object, object>)secret.At("data")!).ToDictionary(k => k.Key.ToString()!,
            k => Encoding.UTF8.GetString(Convert.FromBase64String(k.Value.ToString()!)));
        Assert.Equal(digest, data["Gateway__Auth__Keys__0__Hash"]);
        Assert.Equal("s3rv3r-s3cr3t", data["Gateway__Auth__ServerSecret"]);
        // The digest and the secret appear in the Secret only; the ConfigMap carries the tenant path.
        foreach (var o in objs.Where(o => o.Kind != "Secret"))
        {
            string yaml = new SerializerBuilder().Build().Serialize(o.Root);
            Assert.DoesNotContain(digest, yaml, StringComparison.Ordinal);
            Assert.DoesNotContain("s3rv3r-s3cr3t", yaml, StringComparison.Ordinal);
            Assert.DoesNotContain("sk-", yaml, StringComparison.Ordinal);
        }
        Assert.Contains("acme/search/ci", One(objs, "ConfigMap", "-gateway").Str("data", "gateway.yaml")!, StringComparison.Ordinal);

        // A plaintext key where a digest belongs is refused by values.schema.json.
        var bad = Helm("template", "llm", Chart, "--set", "auth.serverSecret=x", "--set", "auth.keys[0].tenant=a/b/c",
            "--set", "auth.keys[0].hash=sk-live-plaintext-key");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("auth/keys/0/hash", bad.All, StringComparison.Ordinal);
    }

    [Fact]
    public void Template_TenantTreeChange_ReloadedInPlace_OtherConfigChangeRollsThePods()
    {
        static string Checksum(params string[] set) =>
            One(Template(set), "Deployment", "-gateway").Str("spec", "template", "metadata", "annotations", "checksum/config")!;

        string baseline = Checksum();
        // The gateway re-reads its mounted file and applies a new tree in place (ConfigReloader): no rollout.
        Assert.Equal(baseline, Checksum("--set", "config.scheduling.tenants[0].name=acme", "--set", "config.scheduling.tenants[0].weight=3"));
        // What is read once at start changes the pod template, so the pods roll.
        Assert.NotEqual(baseline, Checksum("--set", "config.routing.policy=round-robin"));
        var env = ((List<object>)One(Template(), "Deployment", "-gateway").At("spec", "template", "spec", "containers", 0, "env")!)
            .Cast<Dictionary<object, object>>();
        Assert.Contains(env, e => (string)e["name"] == "DOTNET_USE_POLLING_FILE_WATCHER" && (string)e["value"] == "true");
    }

    [Theory]
    [InlineData("redis.mode=none", "needs shared state")]
    [InlineData("gateway.terminationGracePeriodSeconds=20", "must exceed preStopSleepSeconds")]
    [InlineData("workers.mode=external", "workers.external.urls")]
    [InlineData("workers.mode=gpu-magic", "workers/mode")]
    [InlineData("config.scheduling.policy=round-robin", "config/scheduling/policy")]
    [InlineData("workers.drainTimeoutSeconds=200", "workers.terminationGracePeriodSeconds")]
    [InlineData("config.agents.mode=on", "config/agents/mode")]
    [InlineData("config.agents.policy=fixed:soon", "config/agents/policy")]
    [InlineData("workers.discovery=consul", "workers/discovery")]
    [InlineData("workers.mode=external,workers.external.urls[0]=http://x:8000,workers.discovery=kubernetes", "needs workers.mode=statefulset")]
    public void Template_InvalidValues_FailWithClearMessage(string set, string message)
    {
        var r = Helm("template", "llm", Chart, "--set", set);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(message, r.All, StringComparison.Ordinal);
    }

    [Fact]
    public void Template_ExternalWorkersSingleReplicaNoRedis_StaticListNoWorkerObjects()
    {
        var objs = Template("--set", "workers.mode=external", "--set", "workers.external.urls[0]=http://vllm-0.vllm:8000",
            "--set", "redis.mode=none", "--set", "gateway.replicas=1", "--set", "gateway.autoscaling.enabled=false");
        Assert.DoesNotContain(objs, o => o.Kind == "StatefulSet");
        Assert.DoesNotContain(objs, o => o.Kind == "HorizontalPodAutoscaler");
        Assert.Equal("1", One(objs, "Deployment", "-gateway").Str("spec", "replicas"));
        string config = One(objs, "ConfigMap", "-gateway").Str("data", "gateway.yaml")!;
        Assert.Contains("Mode: Static", config, StringComparison.Ordinal);
        Assert.Contains("http://vllm-0.vllm:8000", config, StringComparison.Ordinal);
    }

    [Fact]
    public void Template_KubernetesDiscovery_WatchesTheWorkerServiceWithLeastRbac()
    {
        var dns = Template();
        Assert.DoesNotContain(dns, o => o.Kind is "Role" or "RoleBinding");
        Assert.Equal("false", One(dns, "Deployment", "-gateway").Str("spec", "template", "spec", "automountServiceAccountToken"));

        var objs = Template("--set", "workers.discovery=kubernetes");
        var headless = One(objs, "Service", "-worker-headless");
        string config = One(objs, "ConfigMap", "-gateway").Str("data", "gateway.yaml")!;
        var gw = new ConfigurationBuilder().AddInMemoryCollection(Gateway.Configuration.YamlConfigurationExtensions.FlattenYaml(config)).Build();
        Assert.Equal("Kubernetes", gw["Gateway:Workers:Mode"]);
        Assert.Equal(headless.Name, gw["Gateway:Workers:Kubernetes:Service"]);
        Assert.Equal("llm", gw["Gateway:Workers:Kubernetes:Namespace"]);
        Assert.Equal("http", gw["Gateway:Workers:Kubernetes:PortName"]);
        Assert.Equal("http", headless.Str("spec", "ports", 0, "name"));

        var role = One(objs, "Role", "-endpointslices");
        var rule = (Dictionary<object, object>)Assert.Single((List<object>)role.At("rules")!);
        Assert.Equal(["discovery.k8s.io"], ((List<object>)rule["apiGroups"]).Cast<string>());
        Assert.Equal(["endpointslices"], ((List<object>)rule["resources"]).Cast<string>());
        Assert.Equal(["get", "list", "watch"], ((List<object>)rule["verbs"]).Cast<string>());
        var binding = One(objs, "RoleBinding", "-endpointslices");
        Assert.Equal(role.Name, binding.Str("roleRef", "name"));
        var deployment = One(objs, "Deployment", "-gateway");
        Assert.Equal(deployment.Str("spec", "template", "spec", "serviceAccountName"), binding.Str("subjects", 0, "name"));
        Assert.Equal(One(objs, "ServiceAccount", "").Name, binding.Str("subjects", 0, "name"));

        // The token is mounted in the gateway pods only; the gateway may reach the API server.
        Assert.Equal("true", deployment.Str("spec", "template", "spec", "automountServiceAccountToken"));
        Assert.Equal("false", One(objs, "StatefulSet", "-worker").Str("spec", "template", "spec", "automountServiceAccountToken"));
        var egress = (List<object>)One(objs, "NetworkPolicy", "-gateway").At("spec", "egress")!;
        Assert.Contains(egress.Cast<Dictionary<object, object>>(), e => e.TryGetValue("ports", out var p)
            && ((List<object>)p).Cast<Dictionary<object, object>>().Any(x => x["port"].ToString() == "443"));
        var lint = Helm("lint", "--strict", Chart, "--set", "workers.discovery=kubernetes");
        Assert.True(lint.ExitCode == 0, RepoTools.Describe(lint));
    }
}
