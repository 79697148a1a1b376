using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Lora.Build.Elf;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace Lora.Build.Tasks;

/// <summary>
/// After build/publish: where the system libstdc++ lacks <see cref="Version"/>, make that requirement weak in the
/// output copies of <c>libLibTorchSharp.so</c> (see <see cref="WeakVersionPatcher"/>). Does nothing elsewhere.
/// </summary>
public sealed class LoraPatchLibTorchSharp : Task
{
    /// <summary>The output copies of libLibTorchSharp.so (never the NuGet cache's).</summary>
    [Required]
    public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    public string Version { get; set; } = "GLIBCXX_3.4.32";

    /// <summary>Overrides the libstdc++ probe (tests, unusual systems).</summary>
    public string? LibStdCxxPath { get; set; }

    public override bool Execute()
    {
        if (Files.Length == 0)
            return true;

        string? current = null;
        try
        {
            var libstdcxx = string.IsNullOrEmpty(LibStdCxxPath)
                ? LibStdCxxProbe.Locate(Environment.GetEnvironmentVariable("LD_LIBRARY_PATH"))
                : LibStdCxxPath;
            if (libstdcxx is null)
            {
                Log.LogMessage(MessageImportance.Low, "Lora: no libstdc++.so.6 found; libLibTorchSharp.so left as is.");
                return true;
            }

            if (LibStdCxxProbe.Defines(libstdcxx, Version))
            {
                Log.LogMessage(MessageImportance.Low, $"Lora: {libstdcxx} provides {Version}; no patch needed.");
                return true;
            }

            var patched = new List<string>();
            foreach (var path in Files.Select(f => f.ItemSpec).Distinct(StringComparer.Ordinal).Where(File.Exists))
            {
                current = path;
                if (WeakVersionPatcher.Patch(path, LibStdCxxProbe.SoName, Version) == PatchOutcome.Patched)
                    patched.Add(path);
            }

            if (patched.Count > 0)
            {
                Log.LogMessage(MessageImportance.High,
                    $"Lora: {libstdcxx} lacks {Version}; marked that requirement weak in {string.Join(", ", patched)}.");
            }

            return true;
        }
        catch (ElfFormatException e)
        {
            Log.LogError(subcategory: null, errorCode: "LORABUILD001", helpKeyword: null, file: e.Path,
                lineNumber: 0, columnNumber: 0, endLineNumber: 0, endColumnNumber: 0, message: e.Message);
            return false;
        }
        catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
        {
            Log.LogError(subcategory: null, errorCode: "LORABUILD004", helpKeyword: null, file: current,
                lineNumber: 0, columnNumber: 0, endLineNumber: 0, endColumnNumber: 0,
                message: $"Lora: could not patch {current ?? "libLibTorchSharp.so"}: {e.Message} (set LoraPatchLibStdCxx=false to skip the patch).");
            return false;
        }
    }
}
