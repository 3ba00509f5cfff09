using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// <c>continualserve serve</c> as a child process with the environment the Helm chart gives it: the tokens come from
/// environment variables, and the settings that require them come from environment variables too.
/// </summary>
public sealed class RequiredTokenExitTests : IDisposable
{
    private const string ValidToken = "0123456789abcdef0123456789abcdef";

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-required-token-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory(Timeout = 60_000)]
    [InlineData("Management__RequireToken", "", ValidToken, "Management:RequireToken is true, but neither Management:TokenFile nor the environment variable CONTINUALSERVE_MANAGEMENT_TOKEN contains a management token")]
    [InlineData("Distribution__RequireStoreToken", ValidToken, " \n", "Distribution:RequireStoreToken is true, but neither Distribution:StoreTokenFile nor the environment variable CONTINUALSERVE_STORE_TOKEN contains a model store token")]
    [InlineData("Distribution__RequireStoreToken", "", "", "Distribution:RequireStoreToken is true, but neither Distribution:StoreTokenFile nor the environment variable CONTINUALSERVE_STORE_TOKEN contains a model store token")]
    public async Task MissingRequiredTokenExitsTwo(string requirement, string managementToken, string storeToken, string message)
    {
        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(directory, "models"), "--device", "cpu"],
            new Dictionary<string, string>
            {
                [requirement] = "true",
                ["CONTINUALSERVE_MANAGEMENT_TOKEN"] = managementToken,
                ["CONTINUALSERVE_STORE_TOKEN"] = storeToken,
            });

        exitCode.ShouldBe(2, standardOutput + standardError);
        (standardOutput + standardError).ShouldContain(message);
        (standardOutput + standardError).ShouldNotContain("Unhandled exception");
        (standardOutput + standardError).ShouldNotContain("Management API disabled", Case.Sensitive, "a start that fails must not report the management API's state");
        (standardOutput + standardError).ShouldNotContain("Management API at", Case.Sensitive, "a start that fails must not report the management API's state");
    }
}
