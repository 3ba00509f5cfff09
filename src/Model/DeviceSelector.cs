using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Model;

/// <summary>Resolves a device option ("auto", "cpu", "cuda" or "cuda:N") to a TorchSharp device at run time.</summary>
public static class DeviceSelector
{
    public static Device Resolve(string option)
    {
        string value = (option ?? "auto").Trim().ToLowerInvariant();
        if (value == "auto")
        {
            return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        }

        if (value == "cpu")
        {
            return torch.CPU;
        }

        if (value == "cuda" || value.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!torch.cuda.is_available())
            {
                throw new InvalidOperationException(
                    $"Device '{option}' was requested but CUDA is not available; use --device cpu or auto, or run the CUDA image on a GPU node.");
            }

            int index = value == "cuda" ? 0 : ParseIndex(value[5..], option!);
            if (index >= torch.cuda.device_count())
            {
                throw new InvalidOperationException(
                    $"Device '{option}' does not exist; this machine has {torch.cuda.device_count()} CUDA device(s).");
            }

            return new Device(DeviceType.CUDA, index);
        }

        throw new ArgumentException($"Device '{option}' is invalid; expected auto, cpu, cuda or cuda:N.", nameof(option));
    }

    private static int ParseIndex(string text, string option) =>
        int.TryParse(text, out int index) && index >= 0
            ? index
            : throw new ArgumentException($"Device '{option}' is invalid; the CUDA index must be a non-negative integer.", nameof(option));
}
