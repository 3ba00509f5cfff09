namespace ContinualServe.Server.Hosting;

/// <summary>Checks the bearer token of every request under a path prefix before routing's 404 or 405 is sent.</summary>
internal static class BearerTokenMiddleware
{
    /// <summary>
    /// Sends the 401, 403 or 404 of <paramref name="tokenFilter"/> for every request under <paramref name="prefix"/>
    /// that it rejects, whatever the method and path. Routing chooses the endpoint before this middleware runs, but
    /// responds only later: 405 with an Allow header for a method that no route of the path accepts, and 404 for a path
    /// that no route matches. So a client without a valid token learns no route or method. The host's stop disposes
    /// <paramref name="tokenFilter"/>, which logs the rejections that it held back.
    /// </summary>
    public static IApplicationBuilder UseBearerToken(
        this IApplicationBuilder app, PathString prefix, BearerTokenFilter tokenFilter)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(tokenFilter);

        // After the last request, so that the rejection warning counts every request that the filter rejected.
        app.ApplicationServices.GetService<IHostApplicationLifetime>()?.ApplicationStopped.Register(tokenFilter.Dispose);
        return app.Use(async (context, next) =>
        {
            IResult? rejection = IsUnder(context, prefix) ? tokenFilter.Check(context) : null;
            if (rejection is null)
            {
                await next(context).ConfigureAwait(false);
                return;
            }

            await rejection.ExecuteAsync(context).ConfigureAwait(false);
        });
    }

    // Routing matches paths without regard to case, so the prefix is compared the same way.
    private static bool IsUnder(HttpContext context, PathString prefix) =>
        context.Request.Path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase);
}
