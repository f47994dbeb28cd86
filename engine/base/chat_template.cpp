#include "engine/base/chat_template.h"

#include "engine/base/error.h"

namespace pvm {

namespace {
const char* const kImStart = "<|im_start|>";
const char* const kImEnd = "<|im_end|>";
const char* const kEndOfText = "<|endoftext|>";
const char* const kVisionStart = "<|vision_start|>";
const char* const kVisionEnd = "<|vision_end|>";
const char* const kImagePad = "<|image_pad|>";
}  // namespace

ChatPart ChatPart::make_text(std::string t) {
  ChatPart p;
  p.type = Type::Text;
  p.text = std::move(t);
  return p;
}

ChatPart ChatPart::make_image(int64_t n_tokens) {
  ChatPart p;
  p.type = Type::Image;
  p.image_tokens = n_tokens;
  return p;
}

ChatMessage ChatMessage::text(std::string role, std::string text) {
  ChatMessage m;
  m.role = std::move(role);
  m.content.push_back(ChatPart::make_text(std::move(text)));
  return m;
}

std::string render_chat(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& opt) {
  if (messages.empty()) throw Error("chat template: no messages");
  std::string out;
  size_t i0 = 0;
  auto text_only = [](const ChatMessage& m, size_t index, std::string& dst) {
    for (const ChatPart& p : m.content) {
      if (p.type != ChatPart::Type::Text)
        throw Error("chat template: message " + std::to_string(index) + " (" + m.role +
                    "): images are only supported in user messages");
      dst += p.text;
    }
  };
  if (messages[0].role == "system") {
    out += kImStart;
    out += "system\n";
    text_only(messages[0], 0, out);
    out += kImEnd;
    out += "\n";
    i0 = 1;
  }
  int64_t image_count = 0;
  for (size_t i = i0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user") {
      out += kImStart;
      out += "user\n";
      for (const ChatPart& p : m.content) {
        if (p.type == ChatPart::Type::Text) {
          out += p.text;
          continue;
        }
        if (p.image_tokens < 1)
          throw Error("chat template: message " + std::to_string(i) + ": image with " +
                      std::to_string(p.image_tokens) + " tokens (needs >= 1)");
        ++image_count;
        if (opt.add_vision_id) out += "Picture " + std::to_string(image_count) + ": ";
        out += kVisionStart;
        out.reserve(out.size() + static_cast<size_t>(p.image_tokens) * 13 + 32);
        for (int64_t k = 0; k < p.image_tokens; ++k) out += kImagePad;
        out += kVisionEnd;
      }
      out += kImEnd;
      out += "\n";
    } else if (m.role == "assistant") {
      out += kImStart;
      out += "assistant\n";
      text_only(m, i, out);
      out += kImEnd;
      out += "\n";
    } else if (m.role == "system") {
      throw Error("chat template: message " + std::to_string(i) + ": a system message must come first");
    } else {
      throw Error("chat template: message " + std::to_string(i) + ": unsupported role '" + m.role +
                  "' (system, user, assistant)");
    }
  }
  if (opt.add_generation_prompt) {
    out += kImStart;
    out += "assistant\n";
  }
  return out;
}

std::vector<int32_t> chat_stop_ids(const Tokenizer& tok) {
  std::vector<int32_t> ids;
  for (const char* t : {kImEnd, kEndOfText})
    if (auto id = tok.find_token(t)) ids.push_back(*id);
  if (ids.empty())
    throw Error(tok.source() + ": tokenizer has neither <|im_end|> nor <|endoftext|> (needed as stop tokens)");
  return ids;
}

ChatEncoding encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                         const ChatTemplateOptions& opt) {
  bool has_image = false;
  size_t n_images = 0;
  for (const ChatMessage& m : messages)
    for (const ChatPart& p : m.content)
      if (p.type == ChatPart::Type::Image) {
        has_image = true;
        ++n_images;
      }
  std::vector<const char*> needed = {kImStart, kImEnd};
  if (has_image) needed.insert(needed.end(), {kVisionStart, kImagePad, kVisionEnd});
  for (const char* t : needed)
    if (!tok.find_token(t)) throw Error(tok.source() + ": tokenizer has no " + t + " token (needed by the chat template)");

  ChatEncoding enc;
  enc.ids = tok.encode(render_chat(messages, opt));
  enc.stop_ids = chat_stop_ids(tok);
  if (has_image) {
    const int32_t pad = tok.token_id(kImagePad);
    const int32_t vstart = tok.token_id(kVisionStart);
    for (size_t i = 0; i < enc.ids.size(); ++i) {
      if (enc.ids[i] != vstart) continue;
      size_t j = i + 1;
      while (j < enc.ids.size() && enc.ids[j] == pad) ++j;
      if (j > i + 1) enc.images.push_back({i + 1, static_cast<int64_t>(j - i - 1)});
      i = j - 1;
    }
  }
  size_t n_pad_runs = 0;
  if (auto pad = tok.find_token(kImagePad)) {
    for (size_t i = 0; i < enc.ids.size(); ++i)
      if (enc.ids[i] == *pad && (i == 0 || enc.ids[i - 1] != *pad)) ++n_pad_runs;
  }
  if (enc.images.size() != n_images || n_pad_runs != n_images)
    throw Error("chat template: message text contains vision tokens (<|vision_start|>, <|image_pad|>); " +
                std::to_string(n_images) + " image parts but " + std::to_string(n_pad_runs) + " runs of image pads");
  return enc;
}

}  // namespace pvm
