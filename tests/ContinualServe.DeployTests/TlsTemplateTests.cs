using System.Text.RegularExpressions;
using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>
/// The tls values reach every place that needs them: listen addresses, certificate settings, mounts, probes, the
/// announced store URL, the Services' appProtocol, the ServiceMonitor and NOTES.txt. These read the templates as
/// text, and HelmRenderTests checks the manifests helm renders with the same values.
/// </summary>
public sealed partial class TlsTemplateTests
{
    private const string Scheme = "{{ include \"continualserve.scheme\" . }}";

    private const string PortName = "{{ include \"continualserve.portName\" . }}";

    [Theory]
    [InlineData("server-deployment.yaml", "server")]
    [InlineData("learner-deployment.yaml", "learner")]
    public void DeploymentListensWithTlsScheme(string template, string role)
    {
        string text = ReadTemplate(template);

        text.ShouldContain($"- name: ASPNETCORE_URLS\n              value: \"{Scheme}://+:{{{{ .Values.{role}.containerPort }}}}\"", Case.Sensitive);
        text.ShouldContain($"- name: {PortName}\n              containerPort: {{{{ .Values.{role}.containerPort }}}}", Case.Sensitive);
        text.ShouldNotContain("http://");
    }

    [Theory]
    [InlineData("server-deployment.yaml")]
    [InlineData("learner-deployment.yaml")]
    public void ProbesUseTlsScheme(string template)
    {
        // The kubelet skips certificate verification for HTTPS probes (New in k8s.io/kubernetes/pkg/probe/http), so the
        // probes need no authority.
        string text = ReadTemplate(template);
        int probes = Regex.Count(text, @"httpGet:");

        probes.ShouldBe(2);
        Regex.Count(text, $@"port: {Regex.Escape(PortName)}\n\s+scheme: {Regex.Escape("{{ include \"continualserve.scheme\" . | upper }}")}\n")
            .ShouldBe(probes, $"{template}: every httpGet probe names the port from continualserve.portName and the scheme from continualserve.scheme");
        text.ShouldNotContain("port: http\n");
    }

    [Theory]
    [InlineData("server-deployment.yaml")]
    [InlineData("learner-deployment.yaml")]
    public void DeploymentMountsTheTlsSecret(string template)
    {
        string text = ReadTemplate(template);

        text.ShouldContain("{{- with include \"continualserve.tlsEnv\" . }}", Case.Sensitive);
        text.ShouldContain("{{- with include \"continualserve.tlsMount\" . }}", Case.Sensitive);
        text.ShouldContain("{{- with include \"continualserve.tlsVolume\" . }}", Case.Sensitive);
    }

    [Fact]
    public void TlsEnvBeforeExtraEnv()
    {
        // Kubernetes keeps the last of two variables with one name, so extraEnv can replace a generated setting.
        foreach ((string template, string role) in new[] { ("server-deployment.yaml", "server"), ("learner-deployment.yaml", "learner") })
        {
            string text = ReadTemplate(template);
            int tlsEnv = text.IndexOf("continualserve.tlsEnv", StringComparison.Ordinal);
            int extraEnv = text.IndexOf($".Values.{role}.extraEnv", StringComparison.Ordinal);

            tlsEnv.ShouldBeGreaterThan(0, template);
            extraEnv.ShouldBeGreaterThan(tlsEnv, template);
        }
    }

    [Fact]
    public void OnlyServersTrustTheStoreAuthority()
    {
        // The replicas download from the learner's store. The learner downloads nothing, so it needs no authority.
        string server = ReadTemplate("server-deployment.yaml");
        string learner = ReadTemplate("learner-deployment.yaml");

        foreach (string helper in new[] { "storeCaEnv", "storeCaMount", "storeCaVolume" })
        {
            server.ShouldContain($"{{{{- with include \"continualserve.{helper}\" . }}}}", Case.Sensitive);
            learner.ShouldNotContain($"continualserve.{helper}");
        }
    }

    [Fact]
    public void TlsEnvNamesMountedCertificate()
    {
        string env = Helper("continualserve.tlsEnv");
        string volume = Helper("continualserve.tlsVolume");
        string mount = Helper("continualserve.tlsMount");

        env.ShouldStartWith("{{- if .Values.tls.enabled }}", Case.Sensitive);
        env.ShouldContain("- name: Kestrel__Certificates__Default__Path\n  value: {{ printf \"%s/tls.crt\" (include \"continualserve.tlsDirectory\" .) | quote }}", Case.Sensitive);
        env.ShouldContain("- name: Kestrel__Certificates__Default__KeyPath\n  value: {{ printf \"%s/tls.key\" (include \"continualserve.tlsDirectory\" .) | quote }}", Case.Sensitive);
        mount.ShouldContain("- name: tls\n  mountPath: {{ include \"continualserve.tlsDirectory\" . }}\n  readOnly: true", Case.Sensitive);
        volume.ShouldContain("secretName: {{ required ", Case.Sensitive);
        volume.ShouldContain(".Values.tls.secretName }}", Case.Sensitive);
        volume.ShouldContain("- key: tls.crt\n        path: tls.crt", Case.Sensitive);
        volume.ShouldContain("- key: tls.key\n        path: tls.key", Case.Sensitive);
    }

    [Fact]
    public void StoreCaFileIsTheMountedKey()
    {
        string env = Helper("continualserve.storeCaEnv");
        string mount = Helper("continualserve.storeCaMount");
        string volume = Helper("continualserve.storeCaVolume");
        const string condition = "{{- if and .Values.tls.enabled .Values.tls.caSecretName }}";

        env.ShouldStartWith(condition, Case.Sensitive);
        mount.ShouldStartWith(condition, Case.Sensitive);
        volume.ShouldStartWith(condition, Case.Sensitive);
        env.ShouldContain("- name: Distribution__StoreCaFile\n  value: {{ printf \"%s/%s\" (include \"continualserve.storeCaDirectory\" .) .Values.tls.caSecretKey | quote }}", Case.Sensitive);
        mount.ShouldContain("mountPath: {{ include \"continualserve.storeCaDirectory\" . }}\n  readOnly: true", Case.Sensitive);
        volume.ShouldContain("secretName: {{ .Values.tls.caSecretName }}", Case.Sensitive);
        volume.ShouldContain("- key: {{ .Values.tls.caSecretKey }}\n        path: {{ .Values.tls.caSecretKey }}", Case.Sensitive);
    }

    [Fact]
    public void SchemeHelperFollowsTlsEnabled()
    {
        Helper("continualserve.scheme").ShouldContain("{{- ternary \"https\" \"http\" .Values.tls.enabled }}", Case.Sensitive);
    }

    [Fact]
    public void StoreUrlUsesTlsScheme()
    {
        // The learner announces this URL with every version, and the replicas download from it.
        string url = Helper("continualserve.learnerUrl");
        string configMap = ReadTemplate("configmap.yaml");

        url.ShouldContain("printf \"%s://%s:%d\" (include \"continualserve.scheme\" .) (include \"continualserve.learnerHost\" .)", Case.Sensitive);
        configMap.ShouldContain("\"StoreUrl\" (include \"continualserve.learnerUrl\" .)", Case.Sensitive);
    }

    [Theory]
    [InlineData("server-service.yaml")]
    [InlineData("learner-service.yaml")]
    public void ServicePortCarriesSchemeAsAppProtocol(string template)
    {
        // The Services, the probes and the ServiceMonitor find the port by a name that does not change with tls.enabled.
        string text = ReadTemplate(template);

        text.ShouldContain($"- name: {PortName}\n", Case.Sensitive);
        text.ShouldContain($"targetPort: {PortName}\n", Case.Sensitive);
        text.ShouldContain($"appProtocol: {Scheme}\n", Case.Sensitive);
    }

    [Fact]
    public void ServiceMonitorScrapesWithTls()
    {
        string text = ReadTemplate("servicemonitor.yaml");
        string tlsConfig = Helper("continualserve.serviceMonitorTlsConfig");

        text.ShouldContain($"- port: {PortName}\n      scheme: {Scheme}\n", Case.Sensitive);
        text.ShouldContain("{{- if .Values.tls.enabled }}\n      tlsConfig:\n        {{- include \"continualserve.serviceMonitorTlsConfig\" . | nindent 8 }}\n      {{- end }}", Case.Sensitive);
        tlsConfig.ShouldStartWith("{{- if .Values.tls.serviceMonitorTlsConfig }}\n{{- toYaml .Values.tls.serviceMonitorTlsConfig }}", Case.Sensitive);
        tlsConfig.ShouldContain("serverName: {{ include \"continualserve.learnerHost\" . }}", Case.Sensitive);
        tlsConfig.ShouldContain("ca:\n  secret:\n    name: {{ .Values.tls.caSecretName }}\n    key: {{ .Values.tls.caSecretKey }}", Case.Sensitive);
    }

    [Fact]
    public void NotesPrintTlsScheme()
    {
        string text = ReadTemplate("NOTES.txt");

        text.ShouldContain("{{ $scheme }}://{{ include \"continualserve.fullname\" . }}", Case.Sensitive);
        text.ShouldNotContain(".Values.server.service.port");
        text.ShouldNotContain("  http://");
        Regex.Count(text, "curl -sk [^\\n]*https://localhost:").ShouldBe(2);
    }

    [Fact]
    public void HelperReturnsOneDefinition()
    {
        string body = Helper("continualserve.storeCaMount");

        body.ShouldContain("name: store-ca", Case.Sensitive);
        body.ShouldNotContain("define");
        Should.Throw<ShouldAssertException>(() => Helper("continualserve.noSuchHelper"));
    }

    private static string ReadTemplate(string name) => File.ReadAllText(Path.Combine(ChartFiles.TemplatesDirectory, name));

    // Body of one define in _helpers.tpl, from the line after its define to the last {{- end }} before the next
    // define, comment or the end of the file.
    private static string Helper(string name)
    {
        string helpers = ReadTemplate("_helpers.tpl");
        string start = $"{{{{- define \"{name}\" -}}}}\n";
        int index = helpers.IndexOf(start, StringComparison.Ordinal);
        index.ShouldBeGreaterThanOrEqualTo(0, $"_helpers.tpl defines {name}");

        string rest = helpers[(index + start.Length)..];
        Match next = NextDefinitionPattern().Match(rest);
        string body = next.Success ? rest[..next.Index] : rest;
        int end = body.LastIndexOf("{{- end }}", StringComparison.Ordinal);
        end.ShouldBeGreaterThanOrEqualTo(0, $"{name} ends with {{{{- end }}}}");
        return body[..end];
    }

    [GeneratedRegex(@"^\{\{(-? define|/\*)", RegexOptions.Multiline)]
    private static partial Regex NextDefinitionPattern();
}
