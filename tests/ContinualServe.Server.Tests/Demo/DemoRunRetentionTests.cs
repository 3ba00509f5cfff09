using ContinualServe.Server.Demo;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Demo;

public sealed class DemoRunRetentionTests : IDisposable
{
    private readonly string runs = Directory.CreateTempSubdirectory("continualserve-runs-").FullName;

    public void Dispose() => Directory.Delete(runs, recursive: true);

    [Fact]
    public void OldestRunsAreDeleted()
    {
        string[] created = Enumerable.Range(0, 6)
            .Select(day => CreateRun(new DateTime(2026, 12, 1 + day, 10, 0, 0, DateTimeKind.Utc)))
            .Reverse()
            .ToArray();
        string notes = Directory.CreateDirectory(Path.Combine(runs, "demo-notes")).FullName;
        string other = Directory.CreateDirectory(Path.Combine(runs, "experiments")).FullName;

        IReadOnlyList<string> deleted = DemoRunRetention.DeleteOldest(runs, keep: 4);

        deleted.ShouldBe([created[5], created[4]]);
        created[..4].ShouldAllBe(path => Directory.Exists(path));
        created[4..].ShouldAllBe(path => !Directory.Exists(path));
        Directory.Exists(notes).ShouldBeTrue();
        Directory.Exists(other).ShouldBeTrue();
    }

    [Fact]
    public void CurrentRunCountsAndIsKept()
    {
        string oldest = CreateRun(new DateTime(2026, 12, 1, 10, 0, 0, DateTimeKind.Utc));
        string older = CreateRun(new DateTime(2026, 12, 2, 10, 0, 0, DateTimeKind.Utc));

        // A clock set back can give the current run the oldest name, and it is kept all the same.
        string current = CreateRun(new DateTime(2026, 11, 1, 10, 0, 0, DateTimeKind.Utc));

        IReadOnlyList<string> deleted = DemoRunRetention.DeleteOldest(runs, keep: 1, currentRun: current);

        deleted.ShouldBe([oldest, older]);
        Directory.Exists(current).ShouldBeTrue();
    }

    [Fact]
    public void ZeroKeepsEveryRun()
    {
        string run = CreateRun(new DateTime(2026, 12, 1, 10, 0, 0, DateTimeKind.Utc));

        DemoRunRetention.DeleteOldest(runs, keep: 0).ShouldBeEmpty();
        Directory.Exists(run).ShouldBeTrue();
    }

    [Fact]
    public void MissingDirectoryDeletesNothing()
    {
        DemoRunRetention.DeleteOldest(Path.Combine(runs, "missing"), keep: 1).ShouldBeEmpty();
    }

    // A run directory with a file in it, as the demo leaves one.
    private string CreateRun(DateTime started)
    {
        string path = Directory.CreateDirectory(Path.Combine(runs, DemoRunRetention.RunName(started))).FullName;
        File.WriteAllText(Path.Combine(path, "report.json"), "{}");
        return path;
    }
}
