namespace ContinualServe.Server.Distribution;

/// <summary>Old local version that a replica's retention could not delete, and the error that stopped it.</summary>
/// <param name="Version">Number of the version that stays in the store.</param>
/// <param name="Path">Directory of the version.</param>
/// <param name="Error">
/// The error of the deletion: an <see cref="IOException"/>, or an <see cref="UnauthorizedAccessException"/> where the
/// system denies it (a file that another user owns or that is immutable).
/// </param>
public sealed record RetentionFailure(long Version, string Path, Exception Error);
