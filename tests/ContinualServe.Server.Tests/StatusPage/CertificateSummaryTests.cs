using ContinualServe.Server.Hosting;
using ContinualServe.Server.StatusPage;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.StatusPage;

/// <summary>The state and days left of a certificate on the status page, at the limits that the certificate alerts use.</summary>
public sealed class CertificateSummaryTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(-1, 90, "valid", 90)]
    [InlineData(-1, 14.5, "valid", 14.5)]
    [InlineData(-1, 14, "valid", 14)]
    [InlineData(-1, 13.9, "expires_soon", 13.9)]
    [InlineData(-90, 0.25, "expires_soon", 0.25)]
    [InlineData(-90, -2, "expired", -2)]
    [InlineData(1, 90, "not_yet_valid", 90)]
    public void StateFollowsAlertLimits(double notBeforeDays, double notAfterDays, string state, double daysLeft)
    {
        var certificate = new ObservedCertificate(
            "Kestrel:Certificates:Default:Path", "CN=example", Now.AddDays(notBeforeDays), Now.AddDays(notAfterDays));

        CertificateSummary summary = CertificateSummary.From(certificate, Now);

        summary.State.ShouldBe(state);
        summary.DaysLeft.ShouldBe(daysLeft, tolerance: 1e-9);
        summary.Setting.ShouldBe("Kestrel:Certificates:Default:Path");
        summary.Subject.ShouldBe("CN=example");
        summary.NotAfter.ShouldBe(Now.AddDays(notAfterDays));
    }
}
