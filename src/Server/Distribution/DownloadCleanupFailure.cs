namespace ContinualServe.Server.Distribution;

/// <summary>Temporary directory of an interrupted download that a replica's cleanup could not delete, and the error.</summary>
/// <param name="Path">The <c>.download-*</c> directory, which stays in the store.</param>
/// <param name="Error">
/// The error of the deletion: an <see cref="IOException"/>, or an <see cref="UnauthorizedAccessException"/> where the
/// system denies it (a directory of another user, or an immutable file).
/// </param>
public sealed record DownloadCleanupFailure(string Path, Exception Error);
