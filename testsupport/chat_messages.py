"""Our rows' messages (ms-swift roles) as the OpenAI chat messages an evaluator sends to vLLM; shared by the
tests that compare ms-swift's template with the model's own HF chat template."""
import json
from typing import Dict, List


def openai_messages(messages: List[Dict]) -> List[Dict]:
    """ms-swift roles -> OpenAI chat messages: consecutive ``tool_call`` turns become one assistant turn with
    ``tool_calls``; ``tool_response`` becomes ``tool``."""
    msgs = []
    for m in messages:
        if m['role'] == 'tool_call':
            call = {'type': 'function', 'function': json.loads(m['content'])}
            if msgs and msgs[-1]['role'] == 'assistant' and msgs[-1].get('tool_calls') is not None:
                msgs[-1]['tool_calls'].append(call)
            else:
                msgs.append({'role': 'assistant', 'content': '', 'tool_calls': [call]})
        elif m['role'] == 'tool_response':
            msgs.append({'role': 'tool', 'content': m['content']})
        else:
            msgs.append({'role': m['role'], 'content': m['content']})
    return msgs
