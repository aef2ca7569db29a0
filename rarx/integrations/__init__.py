"""rarx inside RAG frameworks: ``rarx.integrations.langchain`` (extra ``langchain``) and
``rarx.integrations.llama_index`` (extra ``llamaindex``). Each is imported only when
asked for; importing rarx never imports a framework."""
