using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Model.Tests.Store;

// These tests need Linux, because only Linux takes the version lock (an flock). A thread that blocks in flock
// cannot be interrupted, so each attempt runs on a background thread that a failed test leaves behind.
public sealed class StoreFileLockTests
{
    private static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(10);

    [Fact]
    public void DisposeOnOtherThreadReleasesLock()
    {
        var store = new ModelStore(SmallModels.TemporaryDirectory());
        IDisposable? versionLock = null;
        RunOnThread(() => versionLock = store.LockVersions()).ShouldBeTrue("the first lock is taken at once");

        // A using block that spans an await disposes on the thread that continues after it.
        versionLock!.Dispose();

        RunOnThread(() => store.LockVersions().Dispose()).ShouldBeTrue("a disposed lock lets another thread take it");
    }

    [Fact]
    public void OutOfOrderDisposeReleasesLock()
    {
        var store = new ModelStore(SmallModels.TemporaryDirectory());
        IDisposable outer = store.LockVersions();
        IDisposable inner = store.LockVersions();

        outer.Dispose();
        RunOnThread(() => store.LockVersions().Dispose(), TimeSpan.FromMilliseconds(500))
            .ShouldBeFalse("the inner hold still excludes other threads");
        inner.Dispose();

        RunOnThread(() => store.LockVersions().Dispose()).ShouldBeTrue("the last hold to go releases the lock");
    }

    [Fact]
    public void LockThroughSymlinkIsReentrant()
    {
        string directory = SmallModels.TemporaryDirectory();
        string link = directory.TrimEnd('/') + "-link";
        Directory.CreateSymbolicLink(link, directory);
        try
        {
            var direct = new ModelStore(directory);
            var throughLink = new ModelStore(link);

            bool nested = RunOnThread(() =>
            {
                using IDisposable first = direct.LockVersions();
                using IDisposable second = throughLink.LockVersions();
            });

            nested.ShouldBeTrue("the thread that holds the lock takes it again through another spelling of the store");
        }
        finally
        {
            File.Delete(link);
        }
    }

    // Runs action on a new background thread and returns whether it finished within the timeout.
    private static bool RunOnThread(Action action, TimeSpan? timeout = null)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                action();
            }
            catch (Exception exception)
            {
                failure = exception;
            }
        })
        {
            IsBackground = true,
        };
        thread.Start();
        bool finished = thread.Join(timeout ?? LockTimeout);
        if (failure is not null)
        {
            throw new InvalidOperationException("The locking thread failed.", failure);
        }

        return finished;
    }
}
