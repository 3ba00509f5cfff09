namespace ContinualServe.Server.Hosting;

/// <summary>The start-up check that a replica can create files in its store directory, and the advice for a failed write.</summary>
internal static class StoreWriteCheck
{
    /// <summary>
    /// Returns the causes to check when a store directory cannot be written. On Linux, a volume mounted read-only fails
    /// with EROFS, and an immutable attribute (chattr +i) fails with EPERM even for root.
    /// </summary>
    public static string WhatToCheck(string directory) =>
        $"Check that user '{Environment.UserName}' can write '{directory}': the directory's owner and mode, whether its volume "
        + "is mounted read-only, and whether it has the immutable attribute (lsattr -d).";

    /// <summary>Creates and deletes an empty file in <paramref name="directory"/>.</summary>
    /// <exception cref="InvalidConfigurationException">The file cannot be created or deleted.</exception>
    public static void ThrowIfNotWritable(string directory, string role)
    {
        string probe = Path.Combine(directory, $".write-check-{Guid.NewGuid():N}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
            }

            File.Delete(probe);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new InvalidConfigurationException(
                $"The store directory '{directory}' is not writable, and the {role} writes every version it downloads there: "
                    + $"{exception.Message} {WhatToCheck(directory)} Or set --store to a writable directory.",
                exception);
        }
    }
}
