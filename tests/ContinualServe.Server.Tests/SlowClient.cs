using System.Net.Sockets;
using System.Text;

namespace ContinualServe.Server.Tests;

/// <summary>A client that sends a request body far below any accepted upload rate.</summary>
internal static class SlowClient
{
    // Writes a space every 100 ms until the server sends something, then returns everything it sends until it closes.
    public static async Task<string> TrickleUntilAnswerAsync(NetworkStream stream, TimeSpan limit)
    {
        using var deadline = new CancellationTokenSource(limit);
        var buffer = new byte[4096];
        var answer = new StringBuilder();
        Task<int> read = stream.ReadAsync(buffer, deadline.Token).AsTask();
        while (!read.IsCompleted && !deadline.IsCancellationRequested)
        {
            try
            {
                await stream.WriteAsync(" "u8.ToArray(), deadline.Token);
            }
            catch (IOException)
            {
                break;
            }

            await Task.WhenAny(read, Task.Delay(100, CancellationToken.None));
        }

        for (int count = await read; count > 0; count = await stream.ReadAsync(buffer, deadline.Token))
        {
            answer.Append(Encoding.UTF8.GetString(buffer, 0, count));
        }

        return answer.ToString();
    }
}
