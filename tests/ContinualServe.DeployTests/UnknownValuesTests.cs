using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>
/// Value names that helm must reject through values.schema.json, and Kubernetes objects that the chart copies into
/// the manifests as given, whose fields the schema must leave open.
/// </summary>
public sealed class UnknownValuesTests
{
    public static TheoryData<string> CiValuesFiles => new(
        Directory.GetFiles(Path.Combine(ChartFiles.ChartDirectory, "ci"), "*-values.yaml").Select(Path.GetFileName).OfType<string>());

    [Theory]
    [InlineData("severs.replicas=3", "severs")]
    [InlineData("image.tags=1.0", "tags")]
    [InlineData("kafka.bootstrapServer=kafka:9092", "bootstrapServer")]
    [InlineData("tls.secretname=continualserve-tls", "secretname")]
    [InlineData("server.replicaCount=3", "replicaCount")]
    [InlineData("learner.resourses.limits.cpu=1", "resourses")]
    [InlineData("server.service.prot=443", "prot")]
    [InlineData("server.autoscaling.maxReplica=5", "maxReplica")]
    [InlineData("server.livenessProbe.periodSecond=5", "periodSecond")]
    [InlineData("learner.gpu.cont=2", "cont")]
    [InlineData("learner.persistence.sise=20Gi", "sise")]
    [InlineData("metrics.serviceMonitor.intervl=1m", "intervl")]
    [InlineData("grafana.dashboard.lable=dashboards", "lable")]
    public void TemplateRejectsMisspelledValue(string setting, string misspelledName)
    {
        (int exitCode, string output) = Helm.Run("template", Helm.ReleaseName, ChartFiles.ChartDirectory, "--set", setting);

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain($"Additional property {misspelledName} is not allowed", Case.Sensitive);
    }

    [Theory]
    [InlineData("server.replicaCount=3")]
    [InlineData("learner.persistence.sise=20Gi")]
    public void LintRejectsMisspelledValue(string setting)
    {
        (int exitCode, string output) = Helm.Run("lint", ChartFiles.ChartDirectory, "--set", setting);

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain("is not allowed", Case.Sensitive);
    }

    // Each setting is a field of a Kubernetes or Prometheus Operator object that the templates copy with toYaml, or an
    // application setting. The expected text is how that field appears in the rendered manifests.
    [Theory]
    [InlineData("server.resources.claims[0].name=accelerator", "name: accelerator")]
    [InlineData("learner.resources.claims[0].name=accelerator", "name: accelerator")]
    [InlineData("server.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=7", "weight: 7")]
    [InlineData("server.tolerations[0].tolerationSeconds=17", "tolerationSeconds: 17")]
    [InlineData("server.extraEnv[0].name=POD_IP,server.extraEnv[0].valueFrom.fieldRef.fieldPath=status.podIP", "fieldPath: status.podIP")]
    [InlineData("podSecurityContext.fsGroupChangePolicy=OnRootMismatch", "fsGroupChangePolicy: OnRootMismatch")]
    [InlineData("securityContext.privileged=false", "privileged: false")]
    [InlineData("image.pullSecrets[0].name=registry-login", "name: registry-login")]
    [InlineData("config.Learner.HoldoutFraction=0.25", "\"HoldoutFraction\": \"0.25\"")]
    public void PassThroughFieldIsRendered(string setting, string expectedText)
    {
        (int exitCode, string output) = Helm.Run("template", Helm.ReleaseName, ChartFiles.ChartDirectory, "--set", setting);

        exitCode.ShouldBe(0, output);
        output.ShouldContain(expectedText, Case.Sensitive);
    }

    [Fact]
    public void ServiceMonitorTlsConfigIsRenderedAsGiven()
    {
        (int exitCode, string output) = Helm.Run(
            "template", Helm.ReleaseName, ChartFiles.ChartDirectory,
            "--values", Path.Combine(ChartFiles.ChartDirectory, "ci", "tls-values.yaml"),
            "--set", "tls.serviceMonitorTlsConfig.keySecret.name=scrape-client",
            "--set", "tls.serviceMonitorTlsConfig.keySecret.key=tls.key");

        exitCode.ShouldBe(0, output);
        output.ShouldContain("name: scrape-client", Case.Sensitive);
    }

    [Theory]
    [MemberData(nameof(CiValuesFiles))]
    public void CiValuesRenderAndLint(string fileName)
    {
        string file = Path.Combine(ChartFiles.ChartDirectory, "ci", fileName);

        (int templateExitCode, string templateOutput) = Helm.Run("template", Helm.ReleaseName, ChartFiles.ChartDirectory, "--values", file);
        (int lintExitCode, string lintOutput) = Helm.Run("lint", "--strict", ChartFiles.ChartDirectory, "--values", file);

        templateExitCode.ShouldBe(0, templateOutput);
        lintExitCode.ShouldBe(0, lintOutput);
    }
}
