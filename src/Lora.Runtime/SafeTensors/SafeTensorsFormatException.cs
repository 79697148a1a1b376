namespace Lora.SafeTensors;

/// <summary>A safetensors file or index is malformed; the message names the file and the problem.</summary>
public sealed class SafeTensorsFormatException : LoraException
{
    public SafeTensorsFormatException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        Path = path;
    }

    /// <summary>The file at fault.</summary>
    public string Path { get; }
}
