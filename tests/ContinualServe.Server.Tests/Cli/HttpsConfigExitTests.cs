using System.Security.Cryptography.X509Certificates;
using ContinualServe.Tests.Shared;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>HTTPS settings that cannot work stop <c>serve</c> with exit code 2 and a message that names what to set.</summary>
public sealed class HttpsConfigExitTests : IDisposable
{
    private const string Advice = "Set Kestrel:Certificates:Default:Path to a PEM certificate";

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-https-config-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact(Timeout = 60_000)]
    public async Task HttpsAddressWithoutCertificate()
    {
        string output = await RunExpectingExitTwoAsync([]);

        output.ShouldContain("An https:// listen address has no certificate. " + Advice);
    }

    [Fact(Timeout = 60_000)]
    public async Task MissingCertificateFile()
    {
        string missing = Path.Combine(directory, "absent.crt");

        string output = await RunExpectingExitTwoAsync(
            ["--Kestrel:Certificates:Default:Path=" + missing, "--Kestrel:Certificates:Default:KeyPath=" + Path.Combine(directory, "absent.key")]);

        output.ShouldContain("The HTTPS certificate cannot be loaded: ");
        output.ShouldContain(missing);
        output.ShouldContain(Advice);
    }

    [Fact(Timeout = 60_000)]
    public async Task KeyOfAnotherCertificate()
    {
        (string certificate, _) = WriteSelfSignedCertificate("learner");
        (_, string otherKey) = WriteSelfSignedCertificate("other");

        string output = await RunExpectingExitTwoAsync(
            ["--Kestrel:Certificates:Default:Path=" + certificate, "--Kestrel:Certificates:Default:KeyPath=" + otherKey]);

        output.ShouldContain($"The HTTPS certificate cannot be loaded: Error getting private key from '{otherKey}': ");
        output.ShouldContain("does not match the public key");
        output.ShouldContain(Advice);
    }

    [Fact(Timeout = 60_000)]
    public async Task KeyPathThatIsDirectory()
    {
        (string certificate, _) = WriteSelfSignedCertificate("learner");

        string output = await RunExpectingExitTwoAsync(
            ["--Kestrel:Certificates:Default:Path=" + certificate, "--Kestrel:Certificates:Default:KeyPath=" + directory]);

        output.ShouldContain($"Kestrel:Certificates:Default:KeyPath names {directory}, which is a directory.");
    }

    [Fact(Timeout = 60_000)]
    public async Task PemCertificateWithoutKeyPath()
    {
        (string certificate, _) = WriteSelfSignedCertificate("learner");

        string output = await RunExpectingExitTwoAsync(["--Kestrel:Certificates:Default:Path=" + certificate]);

        output.ShouldContain("The HTTPS certificate cannot be loaded: ");
        output.ShouldContain("private key");
        output.ShouldContain(Advice);
    }

    [Fact(Timeout = 60_000)]
    public async Task EndpointCertificateWithoutKeyPath()
    {
        // An endpoint's own Certificate replaces the default one, so the advice must name that section too.
        (string certificate, _) = WriteSelfSignedCertificate("learner");

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["serve", "--store", Path.Combine(directory, "models"), "--device", "cpu",
                "--Kestrel:Endpoints:Main:Url=https://127.0.0.1:0", "--Kestrel:Endpoints:Main:Certificate:Path=" + certificate]);
        string output = standardOutput + standardError;

        exitCode.ShouldBe(2, output);
        output.ShouldContain("The HTTPS certificate cannot be loaded: ");
        output.ShouldContain("Kestrel:Endpoints:Main:Certificate");
    }

    [Fact(Timeout = 60_000)]
    public async Task StoreAuthorityFileWithoutCertificate()
    {
        string file = Path.Combine(directory, "authorities.pem");
        File.WriteAllText(file, "not a certificate\n");

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(directory, "models"), "--device", "cpu", "--Distribution:StoreCaFile=" + file]);

        exitCode.ShouldBe(2, standardOutput + standardError);
        standardError.ShouldContain($"Distribution:StoreCaFile: The store's certificate authority file {file} contains no PEM certificate");
    }

    private async Task<string> RunExpectingExitTwoAsync(string[] certificateArguments)
    {
        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["serve", "--urls", "https://127.0.0.1:0", "--store", Path.Combine(directory, "models"), "--device", "cpu", .. certificateArguments]);
        string output = standardOutput + standardError;
        exitCode.ShouldBe(2, output);
        output.ShouldNotContain("Unhandled exception");
        output.ShouldNotContain("dev-certs", customMessage: "a server needs its own certificate, not a developer certificate");
        return output;
    }

    private (string Certificate, string Key) WriteSelfSignedCertificate(string name)
    {
        using X509Certificate2 certificate = TestCertificates.CreateSelfSigned(name);
        return TestCertificates.WritePemFiles(certificate, directory, name);
    }
}
