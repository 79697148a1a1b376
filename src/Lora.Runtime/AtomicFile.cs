using System.Text;

namespace Lora;

/// <summary>Writes files through a temporary sibling and a rename, so readers see the old file or the new one,
/// never a torn one, and an interrupted write loses nothing.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = $"{full}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
                File.Delete(temp);
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s => s.Write(new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text)));
}
