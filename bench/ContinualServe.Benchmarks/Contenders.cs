using System.Text.Json;
using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Inference;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Benchmarks;

/// <summary>The servers compared in one run, each on its own 127.0.0.1 port in this process.</summary>
internal static class Contenders
{
    public static ModelSpec Spec(string architecture) => new()
    {
        Name = "bench",
        Architecture = architecture,
        InputShape = [784],
        HiddenSizes = architecture == ModelFactory.MlpArchitecture ? [256, 256] : [16, 32],
    };

    /// <summary>The folder of every model store this run writes, deleted by <see cref="DeleteRunDirectory"/>.</summary>
    public static string RunDirectory { get; } = Path.Combine(Path.GetTempPath(), "continualserve-bench", Guid.NewGuid().ToString("N"));

    /// <summary>Returns the path of a new store folder inside <see cref="RunDirectory"/>.</summary>
    public static string NewStoreDirectory() => Path.Combine(RunDirectory, Guid.NewGuid().ToString("N"));

    /// <summary>Deletes <see cref="RunDirectory"/> with every store in it, and reports a folder that cannot be deleted.</summary>
    public static void DeleteRunDirectory()
    {
        try
        {
            if (Directory.Exists(RunDirectory))
            {
                Directory.Delete(RunDirectory, recursive: true);
            }
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"Could not delete the benchmark stores in {RunDirectory}: {exception.Message}");
        }
    }

    public static ModelStore StoreWithVersions(ModelSpec spec, int count)
    {
        var store = new ModelStore(NewStoreDirectory(), retainedVersions: count + 1);
        for (int version = 1; version <= count; version++)
        {
            torch.manual_seed(version);
            using nn.Module<Tensor, Tensor> module = ModelFactory.Create(spec);
            store.Save(spec, module, new ModelManifest());
        }

        return store;
    }

    /// <summary>ContinualServe itself: batching, pooled parsing, leased hot-swappable model.</summary>
    public static async Task<WebApplication> StartContinualServeAsync(ModelStore store)
    {
        WebApplication app = ServerHost.Build(["--Logging:LogLevel:Default=Warning"], "http://127.0.0.1:0", options =>
        {
            options.ModelName = "bench";
            options.StoreDirectory = store.RootDirectory;
        }, pollStore: false);
        app.Services.GetRequiredService<ModelSwapper>().TrySwapToLatest();
        await app.StartAsync().ConfigureAwait(false);
        return app;
    }

    /// <summary>
    /// What a user would write by hand: a minimal API that deserializes the request into DTOs, runs one
    /// forward pass per request on a model shared under a lock, and serializes a DTO response.
    /// </summary>
    public static async Task<WebApplication> StartNaiveAsync(ModelStore store)
    {
        store.TryLoad(1, out ModelVersion? version);
        nn.Module<Tensor, Tensor> module = version!.LoadModule(torch.CPU);
        module.eval();
        var gate = new object();
        WebApplication app = CreateSlim();
        app.MapPost("/v2/models/{name}/infer", (string name, NaiveRequest request) =>
        {
            NaiveTensor input = request.Inputs[0];
            float[] probabilities;
            lock (gate)
            {
                using var noGrad = torch.no_grad();
                using var scope = torch.NewDisposeScope();
                Tensor features = torch.tensor(input.Data, [input.Shape[0], input.Shape[1]]);
                probabilities = module.forward(features).softmax(1).data<float>().ToArray();
            }

            return Results.Json(new NaiveResponse(name, "1", [new NaiveTensor("probabilities", [input.Shape[0], 10], "FP32", probabilities)]));
        });
        await app.StartAsync().ConfigureAwait(false);
        return app;
    }

    /// <summary>The HTTP and JSON floor: parses and validates the request like ContinualServe, then answers without a model.</summary>
    public static async Task<WebApplication> StartEchoAsync()
    {
        WebApplication app = CreateSlim();
        var reader = new InferenceRequestReader(784, 256);
        var answer = new float[10];
        app.MapPost("/v2/models/{name}/infer", async (HttpContext context) =>
        {
            byte[] body = new byte[context.Request.ContentLength ?? 0];
            await context.Request.Body.ReadExactlyAsync(body).ConfigureAwait(false);
            if (!reader.TryRead(body, out InferenceInput input, out InferenceError? error))
            {
                context.Response.StatusCode = 400;
                await context.Response.WriteAsJsonAsync(error).ConfigureAwait(false);
                return;
            }

            System.Buffers.ArrayPool<float>.Shared.Return(input.Data);
            await context.Response.WriteAsJsonAsync(new NaiveResponse("bench", "1", [new NaiveTensor("probabilities", [1, 10], "FP32", answer)])).ConfigureAwait(false);
        });
        await app.StartAsync().ConfigureAwait(false);
        return app;
    }

    public static Uri InferUri(WebApplication app)
    {
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address + "/v2/models/bench/infer");
    }

    private static WebApplication CreateSlim()
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
        return builder.Build();
    }
}

internal sealed record NaiveRequest(NaiveTensor[] Inputs);

internal sealed record NaiveTensor(string Name, long[] Shape, string Datatype, float[] Data);

internal sealed record NaiveResponse(string ModelName, string ModelVersion, NaiveTensor[] Outputs);
