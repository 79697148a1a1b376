using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace Lora.Build.Tasks;

/// <summary>
/// For build-time checkpoint validation (<c>&lt;LoraCheckpoint Include="models/TinyLlama" /&gt;</c>): returns the
/// checkpoint files the analyzer reads as AdditionalFiles — <c>config.json</c>, <c>*.safetensors.index.json</c>, and the
/// JSON header of every <c>*.safetensors</c>, extracted to <see cref="OutputDirectory"/> (8-byte little-endian length,
/// then the header: the weights are never read, so a multi-GB checkpoint costs a few kilobytes). Each returned item
/// carries <c>LoraCheckpoint</c> (the checkpoint directory) and <c>LoraCheckpointModels</c> (the item's
/// <c>Models</c> metadata). A header file is rewritten only when its content changes (incremental builds stay quiet).
/// </summary>
public sealed class LoraExtractCheckpointMetadata : Task
{
    /// <summary>A safetensors header larger than this is not a header (the format's own limit is 100 MB).</summary>
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    [Required]
    public ITaskItem[] Checkpoints { get; set; } = Array.Empty<ITaskItem>();

    [Required]
    public string OutputDirectory { get; set; } = string.Empty;

    [Output]
    public ITaskItem[] AdditionalFiles { get; private set; } = Array.Empty<ITaskItem>();

    [Output]
    public ITaskItem[] FilesWritten { get; private set; } = Array.Empty<ITaskItem>();

    public override bool Execute()
    {
        var files = new List<ITaskItem>();
        var written = new List<ITaskItem>();
        foreach (var checkpoint in Checkpoints)
        {
            var directory = Path.GetFullPath(checkpoint.GetMetadata("FullPath") is { Length: > 0 } full ? full : checkpoint.ItemSpec).TrimEnd('/', '\\');
            var models = checkpoint.GetMetadata("Models");
            var config = Path.Combine(directory, "config.json");
            if (!File.Exists(config))
            {
                Log.LogError(null, "LORABUILD004", null, null, 0, 0, 0, 0,
                    "LoraCheckpoint '{0}': {1} not found (a Hugging Face checkpoint directory holds config.json and model.safetensors or a sharded index).",
                    checkpoint.ItemSpec, Directory.Exists(directory) ? config : directory);
                continue;
            }

            files.Add(Item(config, directory, models));
            foreach (var index in Directory.GetFiles(directory, "*.safetensors.index.json").OrderBy(f => f, StringComparer.Ordinal))
                files.Add(Item(index, directory, models));

            var outDir = Path.Combine(OutputDirectory, Path.GetFileName(directory) + "-" + ShortHash(directory));
            foreach (var weights in Directory.GetFiles(directory, "*.safetensors").OrderBy(f => f, StringComparer.Ordinal))
            {
                string header;
                try
                {
                    header = ReadHeader(weights);
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    Log.LogError(null, "LORABUILD005", null, weights, 0, 0, 0, 0, "LoraCheckpoint '{0}': {1} is not a safetensors file: {2}", checkpoint.ItemSpec, weights, e.Message);
                    continue;
                }

                Directory.CreateDirectory(outDir);
                var target = Path.Combine(outDir, Path.GetFileName(weights) + ".header.json");
                if (!File.Exists(target) || File.ReadAllText(target, Encoding.UTF8) != header)
                {
                    File.WriteAllText(target, header, new UTF8Encoding(false));
                    Log.LogMessage(MessageImportance.Low, "Lora: extracted the header of {0} to {1}", weights, target);
                }

                written.Add(new TaskItem(target));
                files.Add(Item(target, directory, models));
            }
        }

        AdditionalFiles = files.ToArray();
        FilesWritten = written.ToArray();
        return !Log.HasLoggedErrors;
    }

    /// <summary>The JSON header of a safetensors file: u64 little-endian byte count, then that many bytes of JSON.</summary>
    public static string ReadHeader(string path)
    {
        using var stream = File.OpenRead(path);
        var length = new byte[8];
        if (stream.Read(length, 0, 8) != 8)
            throw new InvalidDataException("shorter than the 8-byte header length");
        var count = BitConverter.ToInt64(length, 0);
        if (!BitConverter.IsLittleEndian)
            throw new InvalidDataException("big-endian hosts are not supported");
        if (count <= 1 || count > MaxHeaderBytes || count > stream.Length - 8)
            throw new InvalidDataException($"header length {count} is out of range");
        var bytes = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = stream.Read(bytes, read, (int)count - read);
            if (n == 0)
                throw new InvalidDataException("truncated header");
            read += n;
        }

        var text = Encoding.UTF8.GetString(bytes).TrimEnd(' ');
        if (!text.StartsWith("{", StringComparison.Ordinal))
            throw new InvalidDataException("the header is not a JSON object");
        return text;
    }

    private static TaskItem Item(string path, string checkpoint, string models)
    {
        var item = new TaskItem(path);
        item.SetMetadata("LoraCheckpoint", checkpoint);
        item.SetMetadata("LoraCheckpointModels", models);
        return item;
    }

    private static string ShortHash(string text)
    {
        using var sha = SHA256.Create();
        var hash = sha.ComputeHash(Encoding.UTF8.GetBytes(text));
        return string.Concat(hash.Take(4).Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
    }
}
