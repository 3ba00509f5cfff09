using ContinualServe.Model.Serving;
using Microsoft.Extensions.DependencyInjection;

namespace ContinualServe.Server.Tests.Management;

internal static class ServiceProviderExtensions
{
    public static long? GetLiveVersion(this IServiceProvider services) => services.GetRequiredService<LiveModel>().CurrentVersion;
}
