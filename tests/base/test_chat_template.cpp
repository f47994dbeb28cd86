// Qwen3-VL Instruct chat template (docs/MODEL.md#chat-template-and-stop-tokens): rendering, ids, stop tokens, errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/base/chat_template.h"
#include "engine/base/error.h"
#include "tests/tokenizer/qwen_fixture.h"

using pvm::ChatMessage;
using pvm::ChatPart;
using pvm::ChatTemplateOptions;
using Ids = std::vector<int32_t>;

namespace {

ChatMessage user_with_image(int64_t n, const std::string& text) {
  ChatMessage m;
  m.role = "user";
  m.content = {ChatPart::make_image(n), ChatPart::make_text(text)};
  return m;
}

std::string pads(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "<|image_pad|>";
  return s;
}

// A minimal byte-level tokenizer whose special tokens have ids unlike Qwen's.
pvm::Tokenizer tiny_chat_tokenizer(bool with_im_end = true) {
  using json = nlohmann::json;
  json vocab = json::object();
  auto byte_char = [](int b) {
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
      int n = 0;
      for (int k = 0; k < b; ++k)
        if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255))) ++n;
      cp = 256 + n;
    }
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return s;
  };
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  json added = json::array();
  int id = 500;
  for (const char* t : {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"}) {
    if (!with_im_end && std::string(t) == "<|im_end|>") {
      ++id;
      continue;
    }
    added.push_back({{"id", id++}, {"content", t}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"single_word", false}});
  }
  json j = {{"added_tokens", added},
            {"normalizer", {{"type", "NFC"}}},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
  return pvm::Tokenizer::from_json(j.dump(), "tiny-chat-tokenizer.json");
}

}  // namespace

// ---- rendering (no tokenizer needed) ----

TEST(ChatTemplate, RendersSpecExample) {
  // docs/MODEL.md#chat-template-and-stop-tokens, with the processor's expansion to N pads
  std::string want = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n"
                     "<|im_start|>assistant\n";
  EXPECT_EQ(pvm::render_chat({user_with_image(1, "Describe this image.")}), want);
  std::string want4 = "<|im_start|>user\n<|vision_start|>" + pads(4) +
                      "<|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(pvm::render_chat({user_with_image(4, "Describe this image.")}), want4);
}

TEST(ChatTemplate, NoDefaultSystemPrompt) {
  std::string r = pvm::render_chat({ChatMessage::text("user", "Hi")});
  EXPECT_EQ(r, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(r.find("system"), std::string::npos);
}

TEST(ChatTemplate, SystemAndAssistantHistory) {
  std::vector<ChatMessage> msgs = {ChatMessage::text("system", "You are terse."), ChatMessage::text("user", "2+2?"),
                                   ChatMessage::text("assistant", "4"), user_with_image(2, "And this?")};
  std::string want =
      "<|im_start|>system\nYou are terse.<|im_end|>\n"
      "<|im_start|>user\n2+2?<|im_end|>\n"
      "<|im_start|>assistant\n4<|im_end|>\n"
      "<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>And this?<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(pvm::render_chat(msgs), want);
  ChatTemplateOptions no_gen;
  no_gen.add_generation_prompt = false;
  EXPECT_EQ(pvm::render_chat(msgs, no_gen), want.substr(0, want.size() - std::string("<|im_start|>assistant\n").size()));
}

TEST(ChatTemplate, PartsInOrderAndVisionIds) {
  ChatMessage m;
  m.role = "user";
  m.content = {ChatPart::make_text("Compare "), ChatPart::make_image(1), ChatPart::make_text(" with "),
               ChatPart::make_image(1)};
  ChatTemplateOptions opt;
  opt.add_vision_id = true;
  std::vector<ChatMessage> msgs = {m, ChatMessage::text("assistant", "ok"), user_with_image(1, "and?")};
  std::string v = "<|vision_start|><|image_pad|><|vision_end|>";
  EXPECT_EQ(pvm::render_chat(msgs, opt),
            "<|im_start|>user\nCompare Picture 1: " + v + " with Picture 2: " + v + "<|im_end|>\n" +
                "<|im_start|>assistant\nok<|im_end|>\n" + "<|im_start|>user\nPicture 3: " + v + "and?<|im_end|>\n" +
                "<|im_start|>assistant\n");
}

TEST(ChatTemplate, SystemTextPartsAreJoined) {
  ChatMessage sys;
  sys.role = "system";
  sys.content = {ChatPart::make_text("A"), ChatPart::make_text("B")};
  EXPECT_EQ(pvm::render_chat({sys, ChatMessage::text("user", "x")}),
            "<|im_start|>system\nAB<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, RejectsUnsupportedInput) {
  EXPECT_THROW(pvm::render_chat({}), pvm::Error);
  EXPECT_THROW(pvm::render_chat({ChatMessage::text("user", "a"), ChatMessage::text("system", "late")}), pvm::Error);
  EXPECT_THROW(pvm::render_chat({ChatMessage::text("tool", "42")}), pvm::Error);
  ChatMessage a;
  a.role = "assistant";
  a.content = {ChatPart::make_image(3)};
  EXPECT_THROW(pvm::render_chat({ChatMessage::text("user", "q"), a}), pvm::Error);
  ChatMessage s;
  s.role = "system";
  s.content = {ChatPart::make_image(3)};
  EXPECT_THROW(pvm::render_chat({s, ChatMessage::text("user", "q")}), pvm::Error);
  EXPECT_THROW(pvm::render_chat({user_with_image(0, "none")}), pvm::Error);
}

// ---- ids with the real tokenizer ----

TEST(ChatQwen, SpecIdsAndImageSpan) {
  PVM_REQUIRE_QWEN_TOKENIZER(tok);
  const int n = 6;
  pvm::ChatEncoding e = pvm::encode_chat(tok, {user_with_image(n, "Describe this image.")});
  const Ids& ids = e.ids;
  ASSERT_GE(ids.size(), 3u + 1 + n + 1 + 5);
  EXPECT_EQ(Ids(ids.begin(), ids.begin() + 3), (Ids{151644, 872, 198}));  // <|im_start|>user\n
  EXPECT_EQ(ids[3], 151652);                                              // <|vision_start|>
  for (int i = 0; i < n; ++i) EXPECT_EQ(ids[4 + static_cast<size_t>(i)], 151655);  // <|image_pad|>
  EXPECT_EQ(ids[4 + n], 151653);                                          // <|vision_end|>
  EXPECT_EQ(Ids(ids.end() - 5, ids.end()), (Ids{151645, 198, 151644, 77091, 198}));
  ASSERT_EQ(e.images.size(), 1u);
  EXPECT_EQ(e.images[0].first_pad, 4u);
  EXPECT_EQ(e.images[0].n_pads, n);
  EXPECT_EQ(e.stop_ids, (Ids{151645, 151643}));  // docs/MODEL.md#chat-template-and-stop-tokens: eos [151645, 151643]
  // The text between the image and <|im_end|> is the plain encoding of the text.
  Ids text = tok.encode("Describe this image.");
  EXPECT_EQ(Ids(ids.begin() + 5 + n, ids.end() - 5), text);
}

TEST(ChatQwen, IdsAreTheEncodingOfTheRenderedText) {
  PVM_REQUIRE_QWEN_TOKENIZER(tok);
  std::vector<ChatMessage> msgs = {ChatMessage::text("system", "Be brief."), user_with_image(3, "\n\nWhat is it?"),
                                   ChatMessage::text("assistant", "A cat."), ChatMessage::text("user", " Sure? ")};
  pvm::ChatEncoding e = pvm::encode_chat(tok, msgs);
  EXPECT_EQ(e.ids, tok.encode(pvm::render_chat(msgs)));
  EXPECT_EQ(tok.decode(e.ids), pvm::render_chat(msgs));
  // <|im_start|>system\n starts with [151644, 8948, 198]
  EXPECT_EQ(Ids(e.ids.begin(), e.ids.begin() + 3), (Ids{151644, 8948, 198}));
}

TEST(ChatQwen, VisionTokensTypedInTextAreRejected) {
  PVM_REQUIRE_QWEN_TOKENIZER(tok);
  EXPECT_THROW(pvm::encode_chat(tok, {ChatMessage::text("user", "look <|vision_start|><|image_pad|><|vision_end|>")}),
               pvm::Error);
  // Other special text is tokenized as HF does (as the special token).
  pvm::ChatEncoding e = pvm::encode_chat(tok, {ChatMessage::text("user", "a<|endoftext|>b")});
  EXPECT_NE(std::find(e.ids.begin(), e.ids.end(), 151643), e.ids.end());
}

// ---- a tokenizer with other ids: nothing may assume Qwen's numbers ----

TEST(ChatTiny, StopAndSpecialIdsAreLookedUpByText) {
  pvm::Tokenizer tok = tiny_chat_tokenizer();
  pvm::ChatEncoding e = pvm::encode_chat(tok, {user_with_image(2, "hi")});
  EXPECT_EQ(e.stop_ids, (Ids{502, 500}));  // <|im_end|>, <|endoftext|>
  Ids want = {501, 'u', 's', 'e', 'r', '\n', 503, 505, 505, 504, 'h', 'i', 502, '\n', 501};
  for (char c : std::string("assistant\n")) want.push_back(static_cast<unsigned char>(c));
  EXPECT_EQ(e.ids, want);
  ASSERT_EQ(e.images.size(), 1u);
  EXPECT_EQ(e.images[0].first_pad, 7u);
  EXPECT_EQ(e.images[0].n_pads, 2);
}

TEST(ChatTiny, MissingTemplateTokenNamesTheFile) {
  pvm::Tokenizer tok = tiny_chat_tokenizer(/*with_im_end=*/false);
  try {
    pvm::encode_chat(tok, {ChatMessage::text("user", "hi")});
    FAIL() << "no error";
  } catch (const pvm::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("tiny-chat-tokenizer.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("<|im_end|>"), std::string::npos) << msg;
  }
  EXPECT_EQ(pvm::chat_stop_ids(tok), (Ids{500}));
}
