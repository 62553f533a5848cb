using NativeEngine.Tokenizers;

namespace NativeEngine.Tests;

public sealed class TokenizerTests
{
    public static TheoryData<string> Texts =>
    [
        "",
        "Hello, world!",
        "The quick brown fox\njumps over\tthe lazy dog.",
        "héllo wörld ñ ß",
        "日本語のテキスト、中文文本",
        "emoji: 😀👍🏽 family: 👨‍👩‍👧‍👦 flags: 🇫🇷",
        "math: ∑ x² ≤ ∞, 𝔸𝕓𝕔",
        "  leading and trailing spaces  ",
    ];

    public static TheoryData<string> TokenizerNames => ["byte", "cl100k"];

    [Theory]
    [MemberData(nameof(Texts))]
    public void ByteTokenizerRoundTripsExactly(string text)
    {
        var tokenizer = ByteTokenizer.Instance;

        var ids = tokenizer.Encode(text);

        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(text), ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, 255));
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void Cl100kRoundTripsExactly(string text)
    {
        var tokenizer = Cl100kTokenizer.Instance;

        var ids = tokenizer.Encode(text);

        Assert.All(ids, id => Assert.InRange(id, 0, tokenizer.VocabSize - 1));
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void ByteTokenizerHasTheDocumentedIds()
    {
        var tokenizer = ByteTokenizer.Instance;

        Assert.Equal("byte", tokenizer.Name);
        Assert.Equal(259, tokenizer.VocabSize);
        Assert.Equal((256, 257, 258), (tokenizer.EndOfText, tokenizer.Separator, tokenizer.Padding));
        Assert.Equal([72, 105], tokenizer.Encode("Hi"));
        Assert.Equal([0xF0, 0x9F, 0x98, 0x80], tokenizer.Encode("😀"));
        Assert.False(tokenizer.IsSpecial(255));
        Assert.True(tokenizer.IsSpecial(256) && tokenizer.IsSpecial(257) && tokenizer.IsSpecial(258));
        Assert.False(tokenizer.IsSpecial(259));
        Assert.False(tokenizer.IsSpecial(-1));
    }

    [Fact]
    public void Cl100kHasTheKnownIdsAndVocabulary()
    {
        var tokenizer = Cl100kTokenizer.Instance;

        Assert.Equal("cl100k", tokenizer.Name);
        Assert.Equal(100277, tokenizer.VocabSize);
        Assert.Equal([9906], tokenizer.Encode("Hello"));
        Assert.Equal([9906, 1917], tokenizer.Encode("Hello world"));
        Assert.Equal(100257, tokenizer.EndOfText);
        Assert.Equal(100276, tokenizer.Separator);
        Assert.Equal(100257, tokenizer.Padding);
        Assert.True(tokenizer.IsSpecial(100257) && tokenizer.IsSpecial(100258) && tokenizer.IsSpecial(100276));
        Assert.False(tokenizer.IsSpecial(9906));
        Assert.False(tokenizer.IsSpecial(100256));
    }

    [Fact]
    public void Cl100kEncodesSpecialTokenTextAsItsIdLikeTiktokenAllowedAll()
    {
        var tokenizer = Cl100kTokenizer.Instance;

        Assert.Equal([9906, 100257, 9906], tokenizer.Encode("Hello<|endoftext|>Hello"));
    }

    [Fact]
    public void ByteTokenizerEncodesSpecialTokenTextAsPlainBytes()
    {
        var ids = ByteTokenizer.Instance.Encode("<|endoftext|>");

        Assert.Equal(13, ids.Length);
        Assert.DoesNotContain(ids, ByteTokenizer.Instance.IsSpecial);
    }

    [Theory]
    [MemberData(nameof(TokenizerNames))]
    public void DecodeDropsSpecialIds(string name)
    {
        var tokenizer = TokenizerFactory.Create(name);
        var ids = tokenizer.Encode("ab");
        int[] withSpecials = [tokenizer.Separator, .. ids, tokenizer.EndOfText, tokenizer.Padding];

        Assert.Equal("ab", tokenizer.Decode(withSpecials));
        Assert.Equal("", tokenizer.Decode([tokenizer.EndOfText, tokenizer.Padding]));
        Assert.Equal("", tokenizer.Decode([]));
    }

    [Fact]
    public void ByteTokenizerDecodesInvalidUtf8ToReplacementCharacters()
    {
        var tokenizer = ByteTokenizer.Instance;

        // A lone continuation byte, a truncated 3-byte sequence, an overlong encoding, 0xFF.
        Assert.Equal("a\uFFFDb", tokenizer.Decode([0x61, 0x80, 0x62]));
        Assert.Equal("\uFFFD", tokenizer.Decode([0xE2, 0x82]));
        Assert.DoesNotContain('/', tokenizer.Decode([0xC0, 0xAF]));
        Assert.Equal("\uFFFD", tokenizer.Decode([0xFF]));
        // Every single byte decodes without throwing.
        for (var b = 0; b < 256; b++)
        {
            Assert.NotNull(tokenizer.Decode([b]));
        }
    }

    [Fact]
    public void Cl100kDecodesAPartialCharacterToAReplacementCharacter()
    {
        var tokenizer = Cl100kTokenizer.Instance;
        var ids = tokenizer.Encode("😀");
        Assert.True(ids.Length >= 2, "the emoji is expected to take more than one token");

        Assert.Equal("\uFFFD", tokenizer.Decode(ids.AsSpan(0, 1)));
        Assert.Equal("", tokenizer.Decode([100256, 100265]));
    }

    [Fact]
    public void ALoneSurrogateIsEncodedAsTheReplacementCharacter()
    {
        var ids = ByteTokenizer.Instance.Encode("a\uD800b");

        Assert.Equal([0x61, 0xEF, 0xBF, 0xBD, 0x62], ids);
    }

    [Theory]
    [MemberData(nameof(TokenizerNames))]
    public void DecodeRefusesIdsOutsideTheVocabularyNamingTheIndex(string name)
    {
        var tokenizer = TokenizerFactory.Create(name);

        var tooLarge = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([1, 2, tokenizer.VocabSize]));
        var negative = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]));

        Assert.Contains($"ids[2] = {tokenizer.VocabSize} is outside the vocabulary [0, {tokenizer.VocabSize})", tooLarge.Message);
        Assert.Contains($"tokenizer '{name}'", tooLarge.Message);
        Assert.Contains("ids[0] = -1", negative.Message);
    }

    [Theory]
    [MemberData(nameof(TokenizerNames))]
    public void EncodeRefusesNull(string name) =>
        Assert.Throws<ArgumentNullException>(() => TokenizerFactory.Create(name).Encode(null!));

    [Fact]
    public void TheFactoryRecreatesEachTokenizerFromItsName()
    {
        Assert.Same(ByteTokenizer.Instance, TokenizerFactory.Create("byte"));
        Assert.Same(Cl100kTokenizer.Instance, TokenizerFactory.Create("cl100k"));
        Assert.Equal(["byte", "cl100k"], TokenizerFactory.KnownNames);
        foreach (var name in TokenizerFactory.KnownNames)
        {
            Assert.Equal(name, TokenizerFactory.Create(name).Name);
        }
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("Byte")]
    [InlineData("")]
    public void TheFactoryRefusesAnUnknownNameListingTheKnownOnes(string name)
    {
        var e = Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(name));

        Assert.Contains($"Unknown tokenizer '{name}'", e.Message);
        Assert.Contains("'byte', 'cl100k'", e.Message);
    }
}
