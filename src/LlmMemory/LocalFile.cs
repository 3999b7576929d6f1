using System.Runtime.InteropServices;

namespace LlmMemory;

/// <summary>The one way the tool reads a local file: regular files only, and never more bytes than the reader's cap.</summary>
/// <remarks>
/// A file's reported length cannot be trusted and its name says nothing of its type: <c>/dev/zero</c> reports 0 bytes and
/// never ends, and opening a FIFO named <c>x.json</c> blocks until some writer appears. So the type is checked before the
/// file is opened (after symbolic links are followed), and a whole-file read counts the bytes that actually arrive.
/// </remarks>
public static partial class LocalFile
{
    /// <summary>Bytes read per call while reading a whole file.</summary>
    private const int Chunk = 81920;

    /// <summary>The file-type bits of st_mode (S_IFMT) and a regular file's type (S_IFREG); POSIX values, which .NET's shim passes on unchanged.</summary>
    private const int TypeMask = 0xF000;

    private const int RegularFile = 0x8000;

    /// <summary>
    /// The head of .NET's own <c>FileStatus</c> (dotnet/runtime src/native/libs/System.Native/pal_io.h): Flags, then Mode.
    /// Sized well past the whole struct so later fields the runtime adds cannot write beyond it.
    /// </summary>
    [StructLayout(LayoutKind.Sequential, Size = 512)]
    private struct FileStatus
    {
        public int Flags;
        public int Mode;
    }

    /// <summary>
    /// Reads a whole regular file of at most <paramref name="limit"/> bytes.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="limit">Most bytes the caller accepts.</param>
    /// <param name="what">What the file is, for the size message ("a config.json").</param>
    /// <exception cref="ModelFormatException">Missing, not a regular file, unreadable, or larger than the limit.</exception>
    public static byte[] ReadAllBytes(string path, long limit, string what)
    {
        using FileStream stream = OpenRead(path, Chunk, FileOptions.SequentialScan);
        if (stream.Length > limit)
        {
            throw TooLarge(path, limit, what);
        }

        using var received = new MemoryStream((int)Math.Min(stream.Length, limit));
        byte[] chunk = new byte[Chunk];
        long total = 0;
        while (true)
        {
            // Ask for one byte past the limit: a file that grows while read (or a device that reported 0) is caught by what arrives.
            int read = Read(stream, chunk, (int)Math.Min(chunk.Length, limit + 1 - total), path);
            if (read == 0)
            {
                return received.ToArray();
            }

            total += read;
            if (total > limit)
            {
                throw TooLarge(path, limit, what);
            }

            received.Write(chunk, 0, read);
        }
    }

    /// <summary>Opens a regular file for reading; a FIFO, device, socket or folder is refused by its type, before it is opened.</summary>
    /// <exception cref="ModelFormatException">Missing, not a regular file, or unreadable.</exception>
    public static FileStream OpenRead(string path, int bufferSize = 4096, FileOptions options = FileOptions.None)
    {
        ArgumentNullException.ThrowIfNull(path);
        RequireRegular(path);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize, options);
        }
        catch (Exception error) when (error is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelFormatException(path, null, "does not exist.");
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, null, $"cannot be read ({error.Message.TrimEnd('.')}).");
        }

        // Regular files seek; devices and pipes do not. This also covers Windows, where the type check above does not run.
        if (!stream.CanSeek)
        {
            stream.Dispose();
            throw new ModelFormatException(path, null, "is not a regular file (a device or pipe); give the path of a file.");
        }

        return stream;
    }

    private static int Read(FileStream stream, byte[] buffer, int count, string path)
    {
        try
        {
            return stream.Read(buffer, 0, count);
        }
        catch (IOException error)
        {
            throw new ModelFormatException(path, null, $"cannot be read ({error.Message.TrimEnd('.')}).");
        }
    }

    private static ModelFormatException TooLarge(string path, long limit, string what) =>
        new(path, null, $"is larger than {limit:N0} bytes, the most {what} may hold.");

    /// <summary>Refuses anything but a regular file, by the type <c>stat</c> reports (symbolic links followed).</summary>
    private static void RequireRegular(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        int mode;
        try
        {
            if (Stat(path, out FileStatus status) != 0)
            {
                throw new ModelFormatException(path, null, "does not exist.");
            }

            mode = status.Mode & TypeMask;
        }
        catch (Exception error) when (error is DllNotFoundException or EntryPointNotFoundException)
        {
            return; // The runtime's native shim is missing: the seek check after opening still refuses devices.
        }

        string? kind = mode switch
        {
            RegularFile => null,
            0x4000 => "a folder", // S_IFDIR
            0x1000 => "a FIFO (named pipe)", // S_IFIFO
            0x2000 => "a character device", // S_IFCHR
            0x6000 => "a block device", // S_IFBLK
            0xC000 => "a socket", // S_IFSOCK
            _ => "a special file",
        };
        if (kind is not null)
        {
            throw new ModelFormatException(path, null, $"is {kind}, not a regular file; give the path of a file.");
        }
    }

    /// <summary>stat(2) through the runtime's System.Native shim, the call <see cref="File"/> itself makes; 0 on success.</summary>
    [LibraryImport("libSystem.Native", EntryPoint = "SystemNative_Stat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Stat(string path, out FileStatus status);
}
